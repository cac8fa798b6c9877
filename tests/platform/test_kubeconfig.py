"""The kubeconfig is written atomically and privately: a temp file of its own, then a rename."""

import os

from platform_assets.kubeconfig.fetch import write_private


def test_a_link_left_where_a_temp_file_would_go_is_never_written_through(tmp_path):
    # Someone who can write the folder plants links where a fixed-name temp file would go:
    # the admin credentials must not land in the file they point at.
    victim = tmp_path / "elsewhere"
    victim.write_text("untouched\n")
    home = tmp_path / "home"
    home.mkdir()
    for name in (".kubeconfig.tmp", "kubeconfig.tmp", ".kubeconfig.new"):
        (home / name).symlink_to(victim)
    target = home / "kubeconfig"
    write_private(target, "apiVersion: v1\n")
    assert victim.read_text() == "untouched\n"
    assert target.read_text() == "apiVersion: v1\n"
    assert not target.is_symlink()
    assert target.stat().st_mode & 0o777 == 0o600


def test_a_rewrite_replaces_the_file_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "kubeconfig"
    write_private(target, "old\n")
    inode = target.stat().st_ino
    write_private(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_ino != inode  # renamed over, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["kubeconfig"]
