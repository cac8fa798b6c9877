pytest_plugins = ["tests.fake_pi.fixtures"]
