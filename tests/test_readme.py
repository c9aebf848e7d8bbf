"""The README's complete Python examples (each ```python block that imports scratchcnn itself; the
others are fragments of a longer session) run as written, each in a fresh process."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
          if re.search(r"^import .*scratchcnn", b, flags=re.M)]


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"README python block {index} failed:\n{BLOCKS[index]}\n{result.stderr[-2000:]}"
