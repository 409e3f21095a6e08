from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kgalign.names import CharNgramTfidf, NameEncoderConfig, normalize_name, sparse_similarity


def test_normalize_name():
    assert normalize_name("Abdullah  Gül_(Turkey)") == "abdullah gul turkey"


def test_tfidf_matches_hand_computation():
    enc = CharNgramTfidf(NameEncoderConfig(ngram_min=2, ngram_max=2, words=False, sublinear_tf=False))
    x = enc.fit_transform(["ab", "ba"])
    # features of " ab ": " a", "ab", "b " ; of " ba ": " b", "ba", "a " -- all df = 1, idf = 1 + log(3/2)
    assert len(enc.vocab) == 6
    row = x[0].toarray().ravel()
    nz = row[row > 0]
    assert len(nz) == 3 and np.allclose(nz, 1 / math.sqrt(3))
    assert float((x[0] @ x[1].T).toarray()[0, 0]) == 0.0
    # shared n-grams have lower idf than unique ones
    enc2 = CharNgramTfidf(NameEncoderConfig(ngram_min=2, ngram_max=2, words=False, sublinear_tf=False))
    enc2.fit(["ab", "ab", "cd"])
    assert enc2.idf[enc2.vocab["ab"]] == 1 + math.log(4 / 3)
    assert enc2.idf[enc2.vocab["cd"]] == 1 + math.log(4 / 2)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.text(alphabet="abc xyz", min_size=0, max_size=12), min_size=2, max_size=8))
def test_sparse_similarity_equals_dense_cosine(names):
    enc = CharNgramTfidf().fit(names)
    x = enc.transform(names)
    dense = x.toarray().astype(np.float64)
    norms = np.linalg.norm(dense, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))
    sim = sparse_similarity(x, x, np.arange(len(names)), chunk=3).numpy()
    assert np.allclose(sim, dense @ dense.T, atol=1e-5)
