"""The IR: operators, the graph that wires them, and their byte encoding.

``core`` holds the operator base, the tree-ensemble normal form, linear models
and elementwise steps, the :class:`Graph` and the codec; ``columns`` the
routing and encoding operators (gather, concat, lookup, ...); ``expansions``
the feature expansions (bucketize, polynomial, spline); one module per further
family (svm, mlp, naive_bayes, neighbors, mixture, decomposition, ensembles),
each op with its NumPy ``reference``.  Importing this package
registers every operator kind, so any encoded graph decodes.
"""

# importing the operator modules registers every operator kind
from . import columns, decomposition, ensembles, expansions, mixture, mlp, naive_bayes, neighbors, svm  # noqa: F401
from .core import *  # noqa: F403
from .core import _arr  # noqa: F401  - the array coercion operator modules share
