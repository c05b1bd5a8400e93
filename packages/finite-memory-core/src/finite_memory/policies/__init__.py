"""Memory policies: which turns of a long conversation go into a finite context.

Each policy is a small dataclass with one job, :meth:`Policy.select`, registered in the
``finite_memory.policies`` entry-point group; ``Memory(policy="name", **options)``
loads one by name.
"""

from ._base import Policy, PolicyInput, Selection
from ._summary import RunningSummary
from .hybrid import Hybrid
from .importance import Importance
from .rolling_summary import RollingSummary
from .semantic import Semantic
from .sliding import Sliding

__all__ = [
    "Hybrid",
    "Importance",
    "Policy",
    "PolicyInput",
    "RollingSummary",
    "RunningSummary",
    "Selection",
    "Semantic",
    "Sliding",
]
