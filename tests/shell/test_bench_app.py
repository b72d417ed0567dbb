"""The pieces of `python -m bench app` and `python -m bench gpu` that can be checked without timing."""

from apps.vit_mae import tab as vit_mae_tab
from bench import app as bench_app
from bench import gpu


def test_main_action_is_the_tabs_choice_or_its_first_example():
    from apps import TOPICS

    for topic in TOPICS:
        api_name, arguments = bench_app.main_action(topic)
        assert api_name.startswith(topic.slug) and isinstance(arguments, tuple)
    textgen = next(topic for topic in TOPICS if topic.slug == "textgen")
    assert bench_app.main_action(textgen)[1][2] == 256  # the streaming case: 256 new tokens


def test_handler_fills_the_session_states_the_api_does_not_send(served_app):
    from app import demo

    call = bench_app.handler(demo, "vit_mae_classify")  # inputs: example, upload, and the ViT's name (a State)
    notes, figure, badges, code = call(*vit_mae_tab.API_EXAMPLES["vit_mae_classify"])
    assert "max |difference|" in badges and "def encode" in code


def test_gpu_check_without_cuda_says_so_and_writes_nothing(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.run() is None
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "no CUDA GPU" in printed


def test_gpu_check_reads_the_parity_the_tab_reports():
    badges = '<div><span style="x">max |difference| 3.10e-06 (tolerance 1e-04)</span><span>masks identical</span></div>'
    assert gpu.parity_of([badges, "no badge here"]) == "max |difference| 3.10e-06; masks identical"
    assert gpu.parity_of(["plain text"]) == "(no parity badge)"
