"""Modules that `import adaptive` loads and a learner job rarely uses: loaded on first use.

`import adaptive` imports every learner module, and with them scipy.stats (for
AverageLearner1D's confidence intervals), pandas (for `to_dataframe`) and versioningit
(for nothing at run time): about 1.1 s of its 1.3 s, paid by every learner job before its
first point. Here each is put into sys.modules as a stand-in: `import scipy.stats` still
succeeds, and the real module is imported the first time one of its attributes is used
(by the learner, the user's function, or an unpickled object) or one of its submodules
is imported; nothing changes but when the cost is paid.

Not importlib's LazyLoader: on Python 3.11 the import statement itself reads the module's
`__spec__`, which makes a LazyLoader module load at once. The stand-in holds the spec and
loads on any other attribute.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

DEFERRED = ("scipy.stats", "pandas", "versioningit")
_LOADING = threading.RLock()  # the job's threads (executor managers, metrics) import too


class _StandIn(types.ModuleType):
    """Imports the module it stands for when an attribute it lacks is asked for, then
    takes over its namespace (code that imported the stand-in keeps working)."""

    def _load(self) -> types.ModuleType:
        name = self.__name__
        with _LOADING:
            if sys.modules.get(name) is self:
                del sys.modules[name]
            real = importlib.import_module(name)
            self.__dict__.update(real.__dict__)
        return real

    def __getattr__(self, attribute: str):
        return getattr(self._load(), attribute)


class _SubmodulesLoadTheirPackage:
    """A meta path finder that finds nothing: it loads a stood-in package before one of
    its submodules is imported (`import pandas.core.frame`, or an unpickled DataFrame),
    which would otherwise run without the package's own __init__."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        for name in DEFERRED:
            stand_in = sys.modules.get(name)
            if isinstance(stand_in, _StandIn) and fullname.startswith(name + "."):
                stand_in._load()
        return None


def defer(names: tuple[str, ...] = DEFERRED) -> list[str]:
    """Put a stand-in for each module that is neither loaded nor missing; their names."""
    deferred = []
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)  # (imports the parent package: cheap)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        stand_in = _StandIn(name)
        stand_in.__spec__ = spec
        stand_in.__file__ = spec.origin
        if spec.submodule_search_locations is not None:
            stand_in.__path__ = list(spec.submodule_search_locations)
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:  # as an import would: `scipy.stats` is an attribute of `scipy`
            setattr(sys.modules[parent], child, stand_in)
        deferred.append(name)
    if deferred and not any(isinstance(f, _SubmodulesLoadTheirPackage) for f in sys.meta_path):
        sys.meta_path.insert(0, _SubmodulesLoadTheirPackage())
    return deferred
