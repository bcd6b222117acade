"""The IR: operators, the graph that wires them, and their byte encoding.

``core`` holds the operator base, the tree-ensemble normal form, linear models
and elementwise steps, the :class:`Graph` and the codec; ``columns`` the
routing and encoding operators (gather, concat, lookup, ...); ``expansions``
the feature expansions (bucketize, polynomial, spline).  Importing this package
registers every operator kind, so any encoded graph decodes.
"""

from . import columns, expansions  # noqa: F401  - register the column, encoding and expansion ops
from .core import *  # noqa: F403
from .core import _arr  # noqa: F401  - the array coercion operator modules share
