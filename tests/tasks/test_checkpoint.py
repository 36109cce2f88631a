"""The downstream checkpoint's loop state: what ``loop.json`` holds and how an older one reads."""

import json

from elmokit.tasks.checkpoint import LoopState


def test_loop_state_reads_older_and_newer_files(tmp_path):
    """A loop.json of an older elmokit lacks keys (they keep their defaults); one with keys this version does not
    know reads without them."""
    path = tmp_path / "loop.json"
    path.write_text(json.dumps({"epoch": 3, "step": 120, "best": 91.5, "bad_evals": 1, "unknown_later_key": 7}))
    st = LoopState.read(path)
    assert (st.epoch, st.step, st.best, st.bad_evals) == (3, 120, 91.5, 1)
    assert st.stop_reason is None and st.metrics_lines is None and st.window == [0.0, 0]
    assert LoopState().window is not LoopState().window  # each state its own list
