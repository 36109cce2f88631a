import sys

import pytest

from elmokit.core.malloc import keep_freed_memory


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("ELMOKIT_MALLOPT", "0")
    assert keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_takes_effect_on_glibc_linux():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
