"""``from elmokit.elmo import ElmoLayer``: the torch layer lives in :mod:`elmokit.bilm.elmo`."""

from elmokit.bilm.elmo import ElmoLayer

__all__ = ["ElmoLayer"]
