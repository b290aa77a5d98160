"""Reading frames (issue 18): the cards astropy need not parse to prove they parse. A card the
screen passes must parse; every other card is still parsed (and dropped when it does not)."""

from __future__ import annotations

import logging
import random
import warnings
from pathlib import Path

import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from starnode import synthetic
from starnode.config import Config
from starnode.frame.load import _surely_parses, load_frame

_PARTS = ["1", "-2", "+3", "0.5", ".5", "5.", "1E5", "1e-5", "1D+3", "T", "F", "'a b'", "''",
          "'x''y'", "'NaN'", "NaN", "inf", "(1, 2)", "1.2.3", "--1", "'", "' '", "1 2", "/",
          " / c", "'abc' / d", "TRUE", "e5", "1E", "0x10", "'a/b'", "1/2", "?", "*"]
_KEYWORDS = ["SITELAT", "OBJECT", "A", "DP1", "COMMENT", "HISTORY", "CONTINUE", "lower",
             "BAD KW", "HIERARCH", "DATE-OBS", "A_B"]


def _parses(card: fits.Card) -> bool:
    try:
        card.value  # noqa: B018
    except VerifyError:
        return False
    return True


def test_a_card_the_screen_passes_is_one_astropy_parses() -> None:
    rng = random.Random(18)
    passed = refused = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(4000):
            value = "".join(rng.choice(_PARTS) for _ in range(rng.randint(1, 3)))
            indicator = rng.choice(["= ", "=  ", "=", " = "])
            image = (rng.choice(_KEYWORDS).ljust(8)[:8] + indicator + " " * rng.randint(0, 12)
                     + value)[:80].ljust(80)
            card = fits.Card.fromstring(image)
            if _surely_parses(card._image):
                passed += 1
                assert _parses(card), image
            elif not _parses(card):
                refused += 1
    assert passed > 200 and refused > 200  # both kinds were tried


@pytest.mark.parametrize("card", [
    b"OBSLONG = NaN / no fix", b"XGAIN   = 1.2.3", b"XEXPOSUR= 'ten", b"XOFFSET = 0x10",
])
def test_an_unparsable_card_is_still_dropped(tmp_path: Path, card: bytes,
                                             caplog: pytest.LogCaptureFixture) -> None:
    hdul, _ = synthetic.make_sub(seed=1, shape=(64, 48), pointing_offset_arcmin=(0, 0))
    hdul[0].header["PLACEHLD"] = 1
    path = synthetic.write_frame(tmp_path / "sub.fit", hdul)
    raw = path.read_bytes()
    at = raw.index(b"PLACEHLD")
    path.write_bytes(raw[:at] + card.ljust(80) + raw[at + 80:])
    with caplog.at_level(logging.WARNING):
        fr = load_frame(path, Config({"data_dir": str(tmp_path / "data")}))
    keyword = card[:8].decode().strip()
    assert keyword not in hdul[0].header  # not a card the frame had
    assert keyword not in fr.header
    assert "PLACEHLD" not in fr.header
    assert keyword in caplog.text
    for c in fr.header.cards:  # what is left parses
        assert _parses(c)
