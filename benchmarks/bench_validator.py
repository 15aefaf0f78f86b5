"""How long CodeValidator.validate takes: a 1 KB snippet and a 1 MB file per language.

    python benchmarks/bench_validator.py [--repeat N]

Targets (issue 4): 1 KB < 5 ms, 1 MB < 200 ms. Columns, all medians unless said:
  median ms, max ms  the whole validation with defaults (1 MB: syntax in the child process),
                     1 MB runs 0.1 s apart, as run_code's are (each is followed by a run)
  b2b ms             the same, back to back: throughput, with the child's cleanup in the way
  here ms            everything in this process (child_process_from=None), 0.1 s apart
  stall ms           longest wait of another thread of this process during validations
                     (defaults, then `here stall` for everything in this process): GIL hold
  scan ms            the pattern and secret scan alone, no syntax check
The Python 1 MB input is real code (the interpreter's own standard library, concatenated);
the others repeat a realistic chunk. The first call per language (grammar load, child
process start) is excluded.
"""

from __future__ import annotations

import argparse
import statistics
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runtime.registry import get_registry
from runtime.validation import CodeValidator
from runtime.validation.findings import LineIndex
from runtime.validation.lexical import CodeMask
from runtime.validation.patterns import scan_patterns
from runtime.validation.secrets import scan_secrets
from runtime.validation.syntax import COMPILERS, TreeSitterChecker
from runtime.validation.validator import PER_RULE_LIMIT

KB = 1024
MB = 1024 * 1024

CHUNKS: dict[str, str] = {
    "node": """
// Sum the values of an array, skipping missing ones.
function total{i}(items) {{
  let sum = 0;
  for (const item of items) {{
    if (item == null) continue;
    sum += Number(item.value) || 0;
  }}
  const label = `total ${{sum}} for {i}`;
  return {{ sum, label, at: new Date().toISOString() }};
}}
""",
    "java": """
    // Sum the values, skipping nulls.
    static int total{i}(java.util.List<Integer> items) {{
        int sum = 0;
        for (Integer item : items) {{
            if (item == null) continue;
            sum += item;
        }}
        String label = "total " + sum + " for {i}";
        return label.isEmpty() ? 0 : sum;
    }}
""",
    "go": """
// total{i} sums the values, skipping negatives.
func total{i}(items []int) (int, string) {{
	sum := 0
	for _, item := range items {{
		if item < 0 {{
			continue
		}}
		sum += item
	}}
	return sum, fmt.Sprintf("total %d for {i}", sum)
}}
""",
    "ruby": """
# Sum the values, skipping nils.
def total_{i}(items)
  sum = 0
  items.each do |item|
    next if item.nil?
    sum += item.to_i
  end
  label = "total #{{sum}} for {i}"
  {{ sum: sum, label: label }}
end
""",
    "php": """
// Sum the values, skipping nulls.
function total_{i}(array $items): array {{
    $sum = 0;
    foreach ($items as $item) {{
        if ($item === null) {{ continue; }}
        $sum += (int) $item;
    }}
    $label = "total {{$sum}} for {i}";
    return ['sum' => $sum, 'label' => $label];
}}
""",
    "csharp": """
    // Sum the values, skipping nulls.
    static int Total{i}(System.Collections.Generic.List<int?> items)
    {{
        var sum = 0;
        foreach (var item in items)
        {{
            if (item is null) continue;
            sum += item.Value;
        }}
        var label = $"total {{sum}} for {i}";
        return label.Length > 0 ? sum : 0;
    }}
""",
    "powershell": """
# Sum the values, skipping nulls.
function Get-Total{i} {{
    param([object[]]$Items)
    $sum = 0
    foreach ($item in $Items) {{
        if ($null -eq $item) {{ continue }}
        $sum += [int]$item
    }}
    $label = "total $sum for {i}"
    return @{{ Sum = $sum; Label = $label }}
}}
""",
}
WRAP: dict[str, tuple[str, str]] = {
    "node": ("", ""),
    "java": ("public class Big {\n", "}\n"),
    "go": ('package main\n\nimport "fmt"\n', ""),
    "ruby": ("", ""),
    "php": ("<?php\n", ""),
    "csharp": ("public static class Big\n{\n", "}\n"),
    "powershell": ("", ""),
}


def python_corpus(size: int) -> str:
    """Real Python: stdlib modules (those without __future__ imports, which must come first)."""
    parts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "__future__" in text:
            continue
        try:
            compile(text, str(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            continue
        parts.append(text)
        total += len(text.encode()) + 1
        if total >= size:
            break
    code = "\n".join(parts)
    while len(code.encode()) > size:  # cut at a top-level definition so it still compiles
        code = code[: code.rfind("\ndef ", 0, len(code) - 1)] + "\n"
    return code


def corpus(language: str, size: int) -> str:
    if language == "python":
        return python_corpus(size)
    head, tail = WRAP[language]
    parts, total, i = [head], len(head) + len(tail), 0
    while True:
        chunk = CHUNKS[language].format(i=i)
        if total + len(chunk.encode()) > size:
            break
        parts.append(chunk)
        total += len(chunk.encode())
        i += 1
    return "".join(parts) + tail


class StallMeter:
    """The longest a thread that wants to run every millisecond had to wait: GIL hold time."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> StallMeter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def timed_ms(action: Callable[[], object], repeat: int, pause: float = 0.0) -> tuple[float, float, float]:
    """Median and worst run in ms, and the longest stall of another thread meanwhile.

    `pause` seconds between runs: run_code follows each validation with an execution, so a
    validation rarely starts while the previous one's leftovers (a freed syntax tree) are being
    cleaned up; back-to-back runs (pause 0) measure throughput instead.
    """
    action()  # warm: grammar load, pattern compile, syntax process start
    runs = []
    with StallMeter() as stalls:
        for _ in range(repeat):
            time.sleep(pause)
            start = time.perf_counter()
            action()
            runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1000, max(runs) * 1000, stalls.longest * 1000


def scan_only(validator: CodeValidator, code: str, language: str) -> None:
    """Patterns and secrets, without the syntax check: the part this package's code decides."""
    lang = validator.registry.resolve(language)
    lines = LineIndex(code)
    scan_patterns(code, validator.patterns_for(lang), CodeMask(code, lang.lexer), lines, PER_RULE_LIMIT)
    scan_secrets(code, lines, PER_RULE_LIMIT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    validator = CodeValidator(get_registry())
    in_process = CodeValidator(get_registry(), child_process_from=None)
    checker = TreeSitterChecker()
    print(
        f"{'language':<11} {'bytes':>8} {'median ms':>9} {'max ms':>7} {'b2b ms':>7} {'here ms':>7} "
        f"{'stall ms':>8} {'here stall':>10} {'scan ms':>7}  syntax"
    )
    for language, lang in get_registry().languages.items():
        name = lang.syntax.checker_for(language) if lang.syntax is not None else None
        syntax = f"compiler {name}" if name in COMPILERS else (
            f"tree-sitter {name}" if name and checker.available(name) else "not checked (no grammar)"
        )
        for size, repeat in ((KB, args.repeat * 10), (MB, args.repeat)):
            code = corpus(language, size)
            def run(v: CodeValidator = validator) -> object:
                return v.validate(code, language)  # noqa: B023
            pause = 0.1 if size == MB else 0.0
            median, worst, stall = timed_ms(run, repeat, pause)
            back_to_back, _, _ = timed_ms(run, repeat)
            here, _, here_stall = timed_ms(lambda: run(in_process), repeat, pause)
            scan, _, _ = timed_ms(lambda: scan_only(validator, code, language), repeat)  # noqa: B023
            target = 5 if size == KB else 200
            flag = "" if median < target else f"  over {target} ms"
            print(
                f"{language:<11} {len(code.encode()):>8} {median:>9.2f} {worst:>7.2f} {back_to_back:>7.2f} "
                f"{here:>7.2f} {stall:>8.1f} {here_stall:>10.1f} {scan:>7.2f}  {syntax}{flag}"
            )
    validator.close()


if __name__ == "__main__":
    main()
