"""The ground floor: what every other tunebird module may import, and which imports none of them.

``errors``  the exception types tunebird raises on purpose
``device``  device facts: CPUs, caches, ISA flags, the device fingerprint
``config``  the frozen :class:`Config` naming one candidate, with its JSON form and identity
"""
