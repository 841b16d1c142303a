"""Root conftest of this repo's own test suite (tests/). The landing checks live in checks/."""

pytest_plugins = ["pytester"]
