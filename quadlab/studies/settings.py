"""Settings of the noisy-gradient studies (Newton, ε, batch size), shared by the command line
and the figure job so that both run the same numbers."""

from __future__ import annotations

import numpy as np

from quadlab.validation import check_choice

__all__ = ["SETTINGS", "settings_for"]

#: command -> {"quick": kwargs, "full": kwargs} of the study functions
SETTINGS: dict[str, dict[str, dict]] = {
    "newton": {
        "quick": {"problems": ("hetero-diagonal", "homo-rotated"), "beta2s": (0.9, 0.999),
                  "steps": 8000, "trajectories": 32},
        "full": {},
    },
    "eps": {
        "quick": {"cases": ("hetero",), "seeds": (0,), "rel_eps": (1e-4, 1e-2, 1.0, 1e2, 1e4),
                  "steps": 40_000},
        "full": {"cases": ("hetero", "transformer"), "seeds": (0, 1, 2)},
    },
    "batch": {
        "quick": {"batch_sizes": tuple(4**k for k in range(6)),
                  "one-step": {"repeats": 1024}, "budget": {"steps": 500, "repeats": 8}},
        "full": {"batch_sizes": tuple(2**k for k in range(13)), "one-step": {}, "budget": {}},
    },
}


def settings_for(command: str, quick: bool) -> dict:
    """A copy of the settings of study ``command`` (``quick`` or ``full``).

    Args:
        command: a key of `SETTINGS` ("newton", "eps", "batch").
        quick: the quick settings (True) or the full ones (False).

    Returns:
        The keyword arguments of that study (a new dict).

    Raises:
        ValueError: unknown command. TypeError: quick not a bool.
    """
    check_choice(command, SETTINGS, what="command")
    if not isinstance(quick, bool | np.bool_):
        raise TypeError(f"quick must be True or False, got {quick!r}")
    return dict(SETTINGS[command]["quick" if quick else "full"])
