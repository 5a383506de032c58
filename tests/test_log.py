"""The ``leanecd`` logger: messages reach the current standard output and can be silenced."""

import logging

from leanecd.log import logger


def test_messages_go_to_the_current_stdout(capsys):
    logger.info("features: 12 MiB on cpu")
    assert capsys.readouterr().out == "features: 12 MiB on cpu\n"


def test_a_level_silences_them(capsys):
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        logger.info("hidden")
    finally:
        logger.setLevel(old)
    assert capsys.readouterr().out == ""


def test_messages_are_not_printed_twice_through_the_root_logger(capsys):
    logging.basicConfig(level=logging.INFO, force=True)
    try:
        logger.info("once")
    finally:
        logging.getLogger().handlers.clear()
    captured = capsys.readouterr()
    assert captured.out == "once\n" and "once" not in captured.err
