"""scratchcnn.metrics against scikit-learn (a test-time reference only)."""
import json
import warnings

import numpy as np
import pytest

sk = pytest.importorskip("sklearn.metrics")

from scratchcnn import metrics  # noqa: E402
from scratchcnn.errors import LabelError  # noqa: E402


def _sk_prf(y_true, y_pred, k, average):
    return sk.precision_recall_fscore_support(y_true, y_pred, labels=np.arange(k), average=average,
                                              zero_division=0)


def _cases():
    rng = np.random.default_rng(7)
    cases = []
    for k, n in ((2, 30), (3, 100), (10, 500), (7, 13)):
        cases.append((f"random-k{k}", rng.integers(0, k, n), rng.integers(0, k, n), k))
    # class 3 never in y_true (its recall / support are 0) and class 1 never predicted
    y_true = rng.integers(0, 3, 60)
    y_pred = rng.integers(0, 4, 60)
    y_pred[y_pred == 1] = 0
    cases.append(("missing-and-never-predicted", y_true, y_pred, 4))
    # class 2 absent from both arrays but counted because num_classes says so
    cases.append(("absent-from-both", np.array([0, 1, 1, 3, 3, 0]), np.array([0, 1, 3, 3, 0, 0]), 4))
    # a model that predicts one class only
    cases.append(("constant-prediction", rng.integers(0, 5, 40), np.full(40, 2), 5))
    # all correct
    y = rng.integers(0, 4, 25)
    cases.append(("perfect", y, y.copy(), 4))
    return cases


CASES = _cases()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,y_true,y_pred,k", CASES, ids=IDS)
def test_confusion_matrix_and_accuracy_match_sklearn(name, y_true, y_pred, k):
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes=k)
    assert cm.shape == (k, k) and cm.dtype == np.int64
    np.testing.assert_array_equal(cm, sk.confusion_matrix(y_true, y_pred, labels=np.arange(k)))
    assert cm.sum() == len(y_true)
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred), abs=1e-15)


@pytest.mark.parametrize("name,y_true,y_pred,k", CASES, ids=IDS)
def test_precision_recall_f1_match_sklearn(name, y_true, y_pred, k):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # zero divisions give 0 silently
        p, r, f, s = metrics.precision_recall_f1(y_true, y_pred, num_classes=k)
    ep, er, ef, es = _sk_prf(y_true, y_pred, k, None)
    assert p.shape == r.shape == f.shape == s.shape == (k,)
    np.testing.assert_allclose(p, ep, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r, er, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f, ef, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(s, es)
    for average in ("macro", "weighted"):
        got = metrics.precision_recall_f1(y_true, y_pred, num_classes=k, average=average)
        want = _sk_prf(y_true, y_pred, k, average)
        np.testing.assert_allclose(got[:3], want[:3], rtol=0, atol=1e-12)
        assert got[3] == len(y_true)


def test_edge_case_values_are_zero_not_nan():
    # class 2 is never predicted and never true, class 1 is never predicted
    p, r, f, s = metrics.precision_recall_f1([0, 1, 1, 0], [0, 0, 0, 0], num_classes=3)
    np.testing.assert_allclose(p, [0.5, 0.0, 0.0])
    np.testing.assert_allclose(r, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(f, [2 / 3, 0.0, 0.0])
    np.testing.assert_array_equal(s, [2, 2, 0])


def test_num_classes_default_is_largest_label_plus_one():
    cm = metrics.confusion_matrix([0, 4], [1, 4])
    assert cm.shape == (5, 5)
    assert cm[0, 1] == 1 and cm[4, 4] == 1 and cm.sum() == 2


def test_scores_are_turned_into_labels():
    y_true = np.array([0, 1, 2, 1])
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.1, 0.1, 0.8]])
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, scores),
                                  sk.confusion_matrix(y_true, scores.argmax(1), labels=np.arange(3)))
    assert metrics.accuracy(y_true, scores) == 0.5


@pytest.mark.parametrize("digits", [2, 4])
@pytest.mark.parametrize("name,y_true,y_pred,k", CASES, ids=IDS)
def test_classification_report_is_sklearns_layout(name, y_true, y_pred, k, digits):
    want = sk.classification_report(y_true, y_pred, labels=np.arange(k), digits=digits, zero_division=0)
    assert metrics.classification_report(y_true, y_pred, digits=digits, num_classes=k) == want
    names = [f"class-{i}" * (i + 1) for i in range(k)]   # names of many widths
    want = sk.classification_report(y_true, y_pred, labels=np.arange(k), target_names=names,
                                    digits=digits, zero_division=0)
    assert metrics.classification_report(y_true, y_pred, class_names=names, digits=digits) == want


@pytest.mark.parametrize("name,y_true,y_pred,k", CASES, ids=IDS)
def test_classification_metrics_dict(name, y_true, y_pred, k):
    names = [f"c{i}" for i in range(k)]
    m = metrics.classification_metrics(y_true, y_pred, class_names=names)
    m = json.loads(json.dumps(m))                 # JSON-friendly: plain types only
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred), abs=1e-15)
    assert m["num_examples"] == len(y_true) and m["num_classes"] == k and m["class_names"] == names
    assert m["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=np.arange(k)).tolist()
    ep, er, ef, es = _sk_prf(y_true, y_pred, k, None)
    assert [c["name"] for c in m["per_class"]] == names
    assert [c["index"] for c in m["per_class"]] == list(range(k))
    np.testing.assert_allclose([c["precision"] for c in m["per_class"]], ep, atol=1e-12)
    np.testing.assert_allclose([c["recall"] for c in m["per_class"]], er, atol=1e-12)
    np.testing.assert_allclose([c["f1"] for c in m["per_class"]], ef, atol=1e-12)
    assert [c["support"] for c in m["per_class"]] == es.tolist()
    for average in ("macro", "weighted"):
        want = _sk_prf(y_true, y_pred, k, average)
        got = m[average]
        np.testing.assert_allclose([got["precision"], got["recall"], got["f1"]], want[:3], atol=1e-12)
        assert got["support"] == len(y_true)


def test_class_names_set_the_number_of_classes():
    m = metrics.classification_metrics([0, 1], [0, 0], class_names=["a", "b", "c"])
    assert m["num_classes"] == 3 and len(m["confusion_matrix"]) == 3
    assert m["per_class"][2] == {"index": 2, "name": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0,
                                 "support": 0}


@pytest.mark.parametrize("call,match", [
    (lambda: metrics.accuracy([0, 1, 2], [0, 1]), "3 labels but y_pred has 2"),
    (lambda: metrics.accuracy([], []), "empty"),
    (lambda: metrics.confusion_matrix([0, -1], [0, 0]), ">= 0"),
    (lambda: metrics.confusion_matrix([0, 1], [0, 5], num_classes=3), "y_pred holds label 5"),
    (lambda: metrics.confusion_matrix([0, 0.5], [0, 0]), "whole class indices"),
    (lambda: metrics.confusion_matrix(np.zeros((2, 2, 2)), [0, 0]), "shape"),
    (lambda: metrics.precision_recall_f1([0, 1], [0, 1], average="micro"), "average"),
    (lambda: metrics.classification_report([0, 1], [0, 1], class_names=["a"], num_classes=2), "1 names"),
    (lambda: metrics.classification_metrics([0, 2], [0, 1], class_names=["a", "b"]), "out of range"),
])
def test_bad_labels_raise_label_error(call, match):
    with pytest.raises(LabelError, match=match):
        call()
