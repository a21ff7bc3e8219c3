"""cfn-lint over the synthesized templates of both stages (the same rule set as scripts/cfn_lint.sh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def test_templates_pass_cfn_lint(dev, prod):
    templates = [str(p) for synth in (dev, prod) for p in sorted(synth.assembly_dir.glob("*.template.json"))]
    assert len(templates) >= 15
    result = subprocess.run(
        [str(CFN_LINT), "--ignore-checks", "W3005", "--", *templates],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
