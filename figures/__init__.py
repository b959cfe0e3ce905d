"""figures package."""

from labkit.interrupts import guard_startup

# Before `figures.__main__` imports torch and the libraries: Ctrl-C while they load
# (`python -m figures`) prints one line and exits 130 instead of an import traceback.
guard_startup("figures", prog="python -m figures")
