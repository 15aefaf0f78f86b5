"""How long CodeValidator.validate takes: a 1 KB snippet and a 1 MB file per language.

    python benchmarks/bench_validator.py [--repeat N]

Targets (issue 4): 1 KB < 5 ms, 1 MB < 200 ms. Prints the median and the worst run of the
whole validation, and the median of the scan alone (patterns + secrets, no syntax check).
The Python 1 MB input is real code (the interpreter's own standard library, concatenated);
the others repeat a realistic chunk. The first call per language (grammar load) is excluded.
"""

from __future__ import annotations

import argparse
import statistics
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

from runtime.registry import get_registry
from runtime.validation import CodeValidator
from runtime.validation.findings import LineIndex
from runtime.validation.lexical import CodeMask
from runtime.validation.patterns import scan_patterns
from runtime.validation.secrets import scan_secrets
from runtime.validation.syntax import LANGUAGE_GRAMMARS, TreeSitterChecker
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


def median_ms(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    action()  # warm: grammar load, pattern compile
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1000, max(runs) * 1000


def scan_only(validator: CodeValidator, code: str, language: str) -> None:
    """Patterns and secrets, without the syntax check: the part this package's code decides."""
    lang = validator.registry.resolve(language)
    lines = LineIndex(code)
    scan_patterns(code, validator.patterns_for(lang), CodeMask(code, lang.name), lines, PER_RULE_LIMIT)
    scan_secrets(code, lines, PER_RULE_LIMIT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    validator = CodeValidator(get_registry())
    checker = TreeSitterChecker()
    print(f"{'language':<11} {'bytes':>8} {'median ms':>9} {'max ms':>8} {'scan ms':>8}  syntax")
    for language in get_registry().languages:
        grammar = LANGUAGE_GRAMMARS.get(language)
        syntax = "compile()" if language == "python" else (
            f"tree-sitter {grammar}" if grammar and checker.available(grammar) else "not checked (no grammar)"
        )
        for size, repeat in ((KB, args.repeat * 10), (MB, args.repeat)):
            code = corpus(language, size)
            median, worst = median_ms(lambda: validator.validate(code, language), repeat)  # noqa: B023
            scan, _ = median_ms(lambda: scan_only(validator, code, language), repeat)  # noqa: B023
            target = 5 if size == KB else 200
            flag = "" if median < target else f"  over {target} ms"
            print(f"{language:<11} {len(code.encode()):>8} {median:>9.2f} {worst:>8.2f} {scan:>8.2f}  {syntax}{flag}")

if __name__ == "__main__":
    main()
