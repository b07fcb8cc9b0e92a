"""Names defined once stay in step: every registered name has what it promises."""

from __future__ import annotations

import pytest

from metanmt.cli import COMMANDS, command_module, command_parser
from metanmt.train.config import SYSTEMS


def test_every_system_has_a_training_step():
    from metanmt.train.steps import STEPS

    assert list(STEPS) == list(SYSTEMS)


def test_fewshot_offers_every_core_algorithm():
    from metanmt.fewshot import ALGORITHMS
    from metanmt.meta import ALGORITHMS as CORE

    assert set(CORE) < set(ALGORITHMS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_its_module(name):
    module = command_module(name)
    assert callable(module.add_arguments) and callable(module.run)
    assert isinstance(getattr(module, "DETAILS", ""), str)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_says_what_it_does(name):
    silent = [action.option_strings or action.dest for action in command_parser(name)._actions
              if not action.help]
    assert silent == []


def test_unknown_names_are_errors_that_list_the_known_ones():
    from metanmt.data.readers import make_corpus
    from metanmt.errors import MetaNMTError
    from metanmt.meta.inner_optim import get_inner_update

    with pytest.raises(MetaNMTError, match="unknown inner optimizer 'rmsprop'; known: adam, sgd"):
        get_inner_update("rmsprop")
    with pytest.raises(MetaNMTError, match="unknown corpus 'x'; known: django, flores200"):
        make_corpus("x", {}, None)
