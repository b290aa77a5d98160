"""The curated public face of the package (issue 9): a few names, imported lazily."""

from __future__ import annotations

import subprocess
import sys

import starnode


def test_public_names_resolve_to_their_owners() -> None:
    from starnode.aavso import submit
    from starnode.config import Config, resolve
    from starnode.errors import ConfigError, FrameRejected, StarnodeError
    from starnode.node import Node
    from starnode.photometry import measure, run_pipeline
    from starnode.records import Measurement
    from starnode.watcher import ImageWatcher

    assert starnode.submit is submit
    assert starnode.Config is Config
    assert starnode.load_config is resolve
    assert starnode.Node is Node
    assert starnode.measure is measure
    assert starnode.run_pipeline is run_pipeline
    assert starnode.Measurement is Measurement
    assert starnode.ImageWatcher is ImageWatcher
    assert issubclass(FrameRejected, StarnodeError)
    assert issubclass(ConfigError, StarnodeError)
    assert starnode.FrameRejected is FrameRejected
    assert sorted(starnode.__all__) == sorted(dir(starnode))


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        starnode.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_cheap() -> None:
    """``import starnode`` must not load astropy (workers and --help stay light)."""
    code = "import sys, starnode; print('astropy' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
