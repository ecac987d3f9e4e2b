"""The README's API example runs as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_api_example_runs():
    api = README.read_text().split("## API", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```python\n(.*?)```", api, flags=re.S)[0]
    namespace = {}
    exec(compile(example, str(README), "exec"), namespace)
    pred, gp, lp = namespace["pred"], namespace["gp"], namespace["lp"]
    assert gp.shape == lp.shape == pred.shape
    assert not gp.requires_grad and not lp.requires_grad
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    # LP keeps values inside the box only.
    outside = namespace["box"] == 0
    assert lp[outside].abs().max() == 0
