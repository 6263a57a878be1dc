"""HttpTeacher against an in-process server on 127.0.0.1: retries, faults, budget, kill and restart."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from black_box_answers import label_all
from deepmimic.errors import TeacherError
from deepmimic.labelling.black_box_job import label_dataset
from deepmimic.labelling.query_log import read_query_log
from deepmimic.teachers.blackbox import BudgetExhaustedError
from deepmimic.teachers.http_teacher import HttpTeacher, info_url


def fast_teacher(url: str, **kw: object) -> HttpTeacher:
    options = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "max_backoff": 0.05, "concurrency": 2, "seed": 0}
    options.update(kw)
    return HttpTeacher(url, **options)  # type: ignore[arg-type]


def test_info_url_replaces_the_last_segment() -> None:
    assert info_url("http://127.0.0.1:8000/v1/predict") == "http://127.0.0.1:8000/v1/info"
    assert info_url("https://h/api/v2/classify?x=1") == "https://h/api/v2/info"
    assert info_url("http://h") == "http://h/info"


def test_labels_every_row_and_learns_num_classes_from_info(wire_server, row_images, wire_true_probs) -> None:
    server = wire_server()
    images = row_images(37)
    with fast_teacher(server.url) as teacher:
        assert teacher.num_classes == 3 and teacher.in_shape == (1, 4, 4)
        probs = label_all(teacher, images, batch_size=8, progress=False)
    np.testing.assert_allclose(probs.numpy(), wire_true_probs(images), atol=1e-6)
    assert sorted(server.answered) == list(range(37))


def test_fault_injection_every_row_labelled_once_within_budget(
    tmp_path: Path, wire_server, row_images, wire_true_probs
) -> None:
    n = 240
    server = wire_server(fault_rate=0.2, seed=0, late_s=1.2)
    images = row_images(n)
    teacher = fast_teacher(server.url, num_classes=3, timeout=0.5, retries=8, concurrency=4)
    with teacher:
        summary = label_dataset(teacher, images, tmp_path / "probs.npy", batch_size=8, progress=False, budget=n)
    assert (
        summary["complete"] and summary["labeled"] == n and summary["queried"] == n and not summary["budget_exhausted"]
    )
    np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), wire_true_probs(images), atol=1e-6)
    # every fault kind happened, and was retried
    assert server.outcomes["error"] > 0 and server.outcomes["drop"] > 0 and server.outcomes["late"] > 0
    assert teacher.retried == server.outcomes["error"] + server.outcomes["drop"] + server.outcomes["late"]
    # the server answered each row exactly once, never more rows than the budget
    assert sorted(server.answered) == list(range(n))
    assert len(server.answered) <= n
    # the query log holds each row once
    _, rows, _ = read_query_log(summary["log"])
    assert sorted(rows.tolist()) == list(range(n))


def test_budget_stops_cleanly_and_a_later_run_finishes(
    tmp_path: Path, wire_server, row_images, wire_true_probs
) -> None:
    server = wire_server()
    images = row_images(40)
    out = tmp_path / "probs.npy"
    with fast_teacher(server.url, num_classes=3) as teacher:
        summary = label_dataset(teacher, images, out, batch_size=4, progress=False, budget=13)
    assert summary["labeled"] == 13 and summary["budget_exhausted"] and not summary["complete"]
    assert summary["out"] is None and not out.exists()
    assert len(server.answered) == 13
    # same budget again: nothing left to spend, nothing sent
    with fast_teacher(server.url, num_classes=3) as teacher:
        again = label_dataset(teacher, images, out, batch_size=4, progress=False, budget=13)
    assert again["from_log"] == 13 and again["queried"] == 0 and again["budget_exhausted"] and len(server.requests) == 4
    # a larger budget finishes without resending a row
    with fast_teacher(server.url, num_classes=3) as teacher:
        final = label_dataset(teacher, images, out, batch_size=4, progress=False, budget=40)
    assert final["complete"] and final["from_log"] == 13 and final["queried"] == 27
    assert sorted(server.answered) == list(range(40))
    np.testing.assert_allclose(np.load(out), wire_true_probs(images), atol=1e-6)


def test_the_teachers_own_budget_caps_a_session(tmp_path: Path, wire_server, row_images) -> None:
    server = wire_server()
    with fast_teacher(server.url, num_classes=3, budget=10) as teacher:
        summary = label_dataset(teacher, row_images(30), tmp_path / "p.npy", batch_size=5, progress=False)
        assert summary["budget"] == 10 and summary["labeled"] == 10 and summary["budget_exhausted"]
        with pytest.raises(BudgetExhaustedError, match="query budget of 10 samples reached"):
            teacher.label_batch(row_images(1))
    assert len(server.answered) == 10


def test_client_errors_are_not_retried_and_carry_the_detail(wire_server, row_images, monkeypatch) -> None:
    server = wire_server(token="s3cret")
    monkeypatch.delenv("DEEPMIMIC_TEACHER_TOKEN", raising=False)
    with (
        fast_teacher(server.url, num_classes=3) as teacher,
        pytest.raises(TeacherError, match=r"HTTP 401: invalid bearer token"),
    ):
        teacher.label_batch(row_images(2))
    assert len(server.requests) == 0  # refused before the body was looked at; and only one attempt:
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    with fast_teacher(server.url, token_env="MY_TOKEN") as teacher:  # info needs the token too
        assert teacher.label_batch(row_images(2)).shape == (2, 3)
    monkeypatch.delenv("MY_TOKEN")
    with pytest.raises(TeacherError, match="MY_TOKEN"):
        fast_teacher(server.url, num_classes=3, token_env="MY_TOKEN")


def test_server_errors_are_retried_then_reported(wire_server, row_images) -> None:
    server = wire_server(always_fail=503)
    with (
        fast_teacher(server.url, num_classes=3, retries=3) as teacher,
        pytest.raises(TeacherError, match=r"no answer after 4 attempts \(last: HTTP 503: always failing\)"),
    ):
        teacher.label_batch(row_images(2))
    assert len(server.requests) == 4


def test_unreachable_server_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TeacherError, match=r"num_classes=K"):
        fast_teacher(f"http://127.0.0.1:{port}/v1/predict", retries=1)


def test_garbage_answers_raise_naming_the_teacher(wire_server, row_images) -> None:
    server = wire_server(answer=lambda images: [[0.9, 0.9, 0.9]] * len(images))
    with (
        fast_teacher(server.url, num_classes=3) as teacher,
        pytest.raises(TeacherError, match=r"127\.0\.0\.1.*rows must sum to 1"),
    ):
        label_all(teacher, row_images(4), progress=False)
    server = wire_server(answer=lambda images: [[1.0]] * len(images))
    with (
        fast_teacher(server.url, num_classes=3) as teacher,
        pytest.raises(TeacherError, match=r"expected probabilities of shape \(4, 3\), got \(4, 1\)"),
    ):
        teacher.label_batch(row_images(4))


def test_too_large_batches_are_split(wire_server, row_images, wire_true_probs) -> None:
    server = wire_server(max_batch=4)
    images = row_images(19)
    with fast_teacher(server.url, num_classes=3) as teacher:
        probs = label_all(teacher, images, batch_size=16, progress=False)
        assert teacher.max_batch == 4
    np.testing.assert_allclose(probs.numpy(), wire_true_probs(images), atol=1e-6)
    assert sorted(server.answered) == list(range(19))


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np, torch
    from deepmimic.labelling.black_box_job import label_dataset
    from deepmimic.teachers.http_teacher import HttpTeacher

    images = torch.from_numpy(np.load(sys.argv[1]))
    teacher = HttpTeacher(sys.argv[2], num_classes=3, concurrency=2, timeout=5, retries=2, backoff=0.01)
    label_dataset(teacher, images, sys.argv[3], batch_size=4, progress=False)
    """
)


def test_kill_and_restart_resends_nothing_and_loses_nothing(
    tmp_path: Path, wire_server, row_images, wire_true_probs
) -> None:
    n = 120
    server = wire_server(delay_s=0.06)  # 30 requests, 2 in flight: ~1 s of labelling
    images = row_images(n)
    np.save(tmp_path / "images.npy", images.numpy())
    out = tmp_path / "probs.npy"
    log = Path(f"{out}.querylog")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "images.npy"), server.url, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        while True:  # wait until a few batches are in the log, then kill -9
            assert child.poll() is None, f"child ended early: {child.communicate()}"
            assert time.monotonic() < deadline, "child wrote no log records in 60 s"
            if log.exists():
                try:
                    if read_query_log(log)[1].numel() >= 12:
                        break
                except TeacherError:
                    pass
            time.sleep(0.01)
    finally:
        child.kill()  # SIGKILL
        child.wait()
    assert child.returncode == -9
    time.sleep(0.3)  # let requests already on the wire reach the server before the restart mark
    restart = time.monotonic()
    _, logged_rows, _ = read_query_log(log)
    logged = set(logged_rows.tolist())
    assert 12 <= len(logged) < n and not out.exists()

    with HttpTeacher(server.url, num_classes=3, concurrency=2, timeout=5, retries=2, backoff=0.01) as teacher:
        summary = label_dataset(teacher, images, out, batch_size=4, progress=False)
    assert server.rows_requested_since(restart).isdisjoint(logged)  # no answered row sent again
    assert summary["complete"] and summary["from_log"] == len(logged) and summary["queried"] == n - len(logged)
    np.testing.assert_allclose(np.load(out), wire_true_probs(images), atol=1e-6)
    _, rows, _ = read_query_log(log)
    assert sorted(set(rows.tolist())) == list(range(n))


def test_interoperates_with_the_deepmimic_serving_app(monkeypatch, row_images, wire_true_probs) -> None:
    """HttpTeacher against the real FastAPI endpoint (deepmimic serve), token and 413 included."""
    app_module = pytest.importorskip("deepmimic.serving.app")
    import socket
    import threading

    import uvicorn

    app = app_module.create_app(
        lambda images: torch.from_numpy(wire_true_probs(images.numpy())),
        num_classes=3,
        in_shape=(1, 4, 4),
        model_name="interop",
        token="tok",
        max_batch=8,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        url = f"http://127.0.0.1:{port}/v1/predict"
        monkeypatch.setenv("DEEPMIMIC_TEACHER_TOKEN", "tok")
        images = row_images(21)
        with fast_teacher(url) as teacher:
            assert teacher.num_classes == 3 and teacher.in_shape == (1, 4, 4)
            probs = label_all(teacher, images, batch_size=16, progress=False)  # 16 > max_batch 8: split on 413
            assert teacher.max_batch == 8
        np.testing.assert_allclose(probs.numpy(), wire_true_probs(images), atol=1e-6)
        monkeypatch.setenv("DEEPMIMIC_TEACHER_TOKEN", "wrong")
        with (
            fast_teacher(url, num_classes=3) as teacher,
            pytest.raises(TeacherError, match="HTTP 401: invalid bearer token"),
        ):
            teacher.label_batch(images[:2])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
