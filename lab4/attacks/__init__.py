"""Adversarial attacks (torchattacks-style): ``FGSM(model, eps)(images, labels) -> images``.

:data:`ATTACKS` is the one place that maps names to attacks; the robustness callback, the
attack configs, adversarial training and the benchmark all read it. Adding an attack = one file
with its :class:`Attack` subclass, one line here, one test. ``ATTACKS[name].in_ball(model, ε)``
is an attack in the threat model of the field: the L∞ ball of radius ε (e.g. 8/255).
"""

from typing import Literal

from jsonargparse.typing import restricted_number_type

from lab4.attacks.apgd import APGD
from lab4.attacks.base import Attack
from lab4.attacks.engine import (
    REPORTED_METRICS,
    AttackResult,
    attack,
    attack_metrics,
    eval_mode,
    perturb,
    record,
)
from lab4.attacks.fgsm import FGSM
from lab4.attacks.iterative import IterativeFGSM
from lab4.attacks.pgd import PGD
from lab4.attacks.restarts import best_of_restarts

#: name (in configs and tables) → attack class
ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "iterative": IterativeFGSM,
    "pgd": PGD,
    "apgd_ce": APGD,
}

#: the registry's names as a type, so configs are checked when they are parsed
AttackName = Literal[tuple(ATTACKS)]  # type: ignore[valid-type]

#: ε in 1/255 pixel units: above 255 (a step or radius beyond the whole [0, 1] pixel range) is
#: a unit slip (e.g. 8 written as 8·255), rejected when the config is parsed, before any work
Epsilon255 = restricted_number_type("Epsilon255", float, [(">", 0.0), ("<=", 255.0)])

__all__ = [
    "APGD",
    "ATTACKS",
    "Epsilon255",
    "FGSM",
    "PGD",
    "REPORTED_METRICS",
    "Attack",
    "AttackName",
    "AttackResult",
    "IterativeFGSM",
    "attack",
    "attack_metrics",
    "best_of_restarts",
    "eval_mode",
    "perturb",
    "record",
]
