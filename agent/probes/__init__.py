"""One module per probe kind, all behind the small interface in ``base``.

A probe only runs one round when asked; the scheduler owns timing.
"""

from agent.probes.base import Probe, build_probe

__all__ = ["Probe", "build_probe"]
