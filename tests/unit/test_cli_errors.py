"""The CLI's ``error:`` line: text quoted in a message (a driver's message, an upstream's error
class) cannot drive the terminal."""

from __future__ import annotations

import pytest

from syncbridge.cli.main import _fail


def test_escapes_in_an_error_message_are_printed_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        _fail("database said: \x1b[2Jcleared\rover\nsecond line \u202eabc", 3)
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert err == "error: database said: \\x1b[2Jcleared\\rover\nsecond line \\u202eabc\n"
