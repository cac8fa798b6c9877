"""How the SSH resource turns a command into the text the node's shell runs (no server needed)."""

from resources.ssh import SshTarget, _Redactor, command_text


def test_every_argument_is_quoted():
    assert command_text(["echo", "a b", "$(id)", "x;y"]) == "echo 'a b' '$(id)' 'x;y'"


def test_sudo_is_non_interactive_and_ends_option_parsing():
    assert command_text(["systemctl", "restart", "k3s"], sudo=True) == (
        "sudo -n -- systemctl restart k3s"
    )


def test_a_shell_snippet_runs_whole_under_sudo():
    assert command_text("a | b", sudo=True) == "sudo -n -- sh -c 'a | b'"
    assert command_text("a | b") == "a | b"


def test_redaction_replaces_longer_secrets_first():
    redact = _Redactor(["abc", "abcdef", ""])
    assert redact("x abcdef y abc") == "x *** y ***"


def test_known_hosts_name_uses_brackets_for_other_ports():
    assert SshTarget("n", "127.0.0.11", 22, "u").known_hosts_name == "127.0.0.11"
    assert SshTarget("n", "127.0.0.11", 2222, "u").known_hosts_name == "[127.0.0.11]:2222"
