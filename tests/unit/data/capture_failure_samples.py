"""Regenerate failure_samples.json: run failing programs in the real language images and keep
their exit code and stderr, so the monitor's classifier is tested on what runtimes really print.

    python tests/unit/data/capture_failure_samples.py [CASE ...]   # needs the engine and the built images

Each case: (language, case name, file name, code, expected outcome, expected error type).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from runtime.registry import get_registry

CASES: list[tuple[str, str, str, str, str, str | None]] = [
    ("python", "syntax", "main.py", "def f(:\n    pass\n", "syntax_error", "SyntaxError"),
    ("python", "indentation", "main.py", "if True:\nprint(1)\n", "syntax_error", "IndentationError"),
    ("python", "missing-module", "main.py", "import requests_nope\n", "missing_module", "ModuleNotFoundError"),
    ("python", "zero-division", "main.py", "def f(x):\n    return 1 / x\nf(0)\n", "runtime_error", "ZeroDivisionError"),
    ("python", "custom", "main.py", "class Boom(Exception):\n    pass\nraise Boom('x')\n", "runtime_error", "Boom"),
    ("python", "chained", "main.py", "try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('bad') from e\n",
     "runtime_error", "ValueError"),
    ("python", "multi-line-message", "main.py", "raise ValueError('line one\\ndetails')\n", "runtime_error",
     "ValueError"),
    ("python", "exception-group", "main.py", "raise ExceptionGroup('errs', [ValueError('a'), TypeError('b')])\n",
     "runtime_error", "ExceptionGroup"),
    ("python", "memory", "main.py", "x = bytearray(10**13)\n", "oom", "MemoryError"),
    ("python", "exit", "main.py", "import sys\nsys.exit(3)\n", "exit_nonzero", None),
    ("node", "syntax", "main.js", "function f( {\n", "syntax_error", "SyntaxError"),
    ("node", "missing-module", "main.js", "require('left-pad-nope');\n", "missing_module", "MODULE_NOT_FOUND"),
    ("node", "missing-package-esm", "main.mjs", "import x from 'left-pad-nope';\n", "missing_module",
     "ERR_MODULE_NOT_FOUND"),
    ("node", "type-error", "main.js", "const o = undefined;\nconsole.log(o.x);\n", "runtime_error", "TypeError"),
    ("node", "custom", "main.js",
     "class ValidationError extends Error { constructor(m) { super(m); this.name = 'ValidationError'; } }\n"
     "throw new ValidationError('bad input');\n", "runtime_error", "ValidationError"),
    ("node", "throw-string", "main.js", "throw 'boom';\n", "runtime_error", "thrown value"),
    ("node", "unhandled-rejection", "main.js", "Promise.reject('boom');\n", "runtime_error",
     "UnhandledPromiseRejection"),
    ("node", "exit", "main.js", "process.exit(3);\n", "exit_nonzero", None),
    ("java", "compile", "Main.java",
     "public class Main {\n  public static void main(String[] a) {\n    int x = \n  }\n}\n",
     "syntax_error", "compile error"),
    ("java", "missing-package", "Main.java",
     "import org.apache.commons.lang3.StringUtils;\npublic class Main {\n  public static void main(String[] a) {}\n}\n",
     "missing_module", "package not found"),
    ("java", "npe", "Main.java",
     "public class Main {\n  public static void main(String[] a) {\n    String s = null;\n    s.length();\n  }\n}\n",
     "runtime_error", "java.lang.NullPointerException"),
    ("java", "arithmetic", "Main.java",
     "public class Main {\n  public static void main(String[] a) {\n    int z = 0;\n"
     "    System.out.println(1 / z);\n  }\n}\n",
     "runtime_error", "java.lang.ArithmeticException"),
    ("java", "oom", "Main.java",
     "public class Main {\n  public static void main(String[] a) {\n"
     "    long[] x = new long[Integer.MAX_VALUE - 8];\n  }\n}\n",
     "oom", "java.lang.OutOfMemoryError"),
    ("go", "compile", "main.go", "package main\n\nfunc main() {\n\tx := 1\n}\n", "syntax_error", "compile error"),
    ("go", "missing-package", "main.go",
     "package main\n\nimport \"github.com/nope/nothere\"\n\nfunc main() { nothere.X() }\n",
     "missing_module", "package not found"),
    ("go", "panic-index", "main.go",
     "package main\n\nfunc main() {\n\ta := []int{1}\n\ti := 5\n\t_ = a[i]\n}\n",
     "runtime_error", "runtime error: index out of range"),
    ("go", "panic-custom", "main.go", "package main\n\nfunc main() {\n\tpanic(\"boom\")\n}\n",
     "runtime_error", "panic"),
    ("go", "deadlock", "main.go", "package main\n\nfunc main() {\n\tc := make(chan int)\n\t<-c\n}\n",
     "runtime_error", "fatal error: all goroutines are asleep - deadlock!"),
    ("go", "exit", "main.go", "package main\n\nimport \"os\"\n\nfunc main() { os.Exit(3) }\n", "exit_nonzero", None),
    ("ruby", "syntax", "main.rb", "def f(x)\n  x +\n", "syntax_error", "SyntaxError"),
    ("ruby", "missing-gem", "main.rb", "require 'nokogiri_nope'\n", "missing_module", "LoadError"),
    ("ruby", "zero-division", "main.rb", "def f(x) = 1 / x\nf(0)\n", "runtime_error", "ZeroDivisionError"),
    ("ruby", "no-method", "main.rb", "nil.upcase\n", "runtime_error", "NoMethodError"),
    ("ruby", "custom", "main.rb", "module App\n  class Boom < StandardError; end\nend\nraise App::Boom, 'x'\n",
     "runtime_error", "App::Boom"),
    ("ruby", "exit", "main.rb", "exit 3\n", "exit_nonzero", None),
    ("php", "parse", "main.php", "<?php\n$x = ;\n", "syntax_error", "ParseError"),
    ("php", "uncaught", "main.php", "<?php\nthrow new RuntimeException('boom');\n",
     "runtime_error", "RuntimeException"),
    ("php", "division", "main.php", "<?php\n$z = 0;\necho intdiv(1, $z);\n", "runtime_error", "DivisionByZeroError"),
    ("php", "memory", "main.php", "<?php\nini_set('memory_limit', '8M');\n$a = str_repeat('x', 64 * 1024 * 1024);\n",
     "oom", "memory exhausted"),
    ("php", "missing-require", "main.php", "<?php\nrequire 'vendor/autoload.php';\n", "missing_module",
     "require failed"),
    ("php", "class-not-found", "main.php", "<?php\n$c = new GuzzleHttp\\Client();\n", "missing_module",
     "class not found"),
    ("php", "exit", "main.php", "<?php\nexit(3);\n", "exit_nonzero", None),
    # Writing past a full filesystem (`/full`, 1 MiB here; a project's quota in a sandbox).
    ("python", "disk-full", "main.py", "open('/full/x', 'wb').write(b'x' * 4 * 1024 * 1024)\n", "disk_full", "ENOSPC"),
    ("node", "disk-full", "main.js", "require('fs').writeFileSync('/full/x', Buffer.alloc(4 * 1024 * 1024));\n",
     "disk_full", "ENOSPC"),
    ("java", "disk-full", "Main.java",
     "public class Main {\n  public static void main(String[] a) throws Exception {\n"
     "    java.nio.file.Files.write(java.nio.file.Path.of(\"/full/x\"), new byte[4 * 1024 * 1024]);\n  }\n}\n",
     "disk_full", "ENOSPC"),
    ("go", "disk-full", "main.go",
     "package main\n\nimport \"os\"\n\nfunc main() {\n"
     "\tif err := os.WriteFile(\"/full/x\", make([]byte, 4<<20), 0o644); err != nil {\n\t\tpanic(err)\n\t}\n}\n",
     "disk_full", "ENOSPC"),
    ("ruby", "disk-full", "main.rb", "File.binwrite('/full/x', 'x' * 4 * 1024 * 1024)\n", "disk_full", "ENOSPC"),
    ("php", "disk-full", "main.php",
     "<?php\nif (file_put_contents('/full/x', str_repeat('x', 4 * 1024 * 1024)) === false) { exit(1); }\n",
     "disk_full", "ENOSPC"),
]


def run(language: str, filename: str, code: str) -> tuple[int, str]:
    lang = get_registry().resolve(language)
    command = f"cd /tmp && cat > {filename} && {lang.command_for(filename)}"
    proc = subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "none", "--name", f"capture-{uuid.uuid4().hex[:12]}",
         "--memory", "1g", "--tmpfs", "/full:size=1m,mode=1777", f"{lang.image}:latest", "sh", "-c", command],
        input=code, capture_output=True, text=True, timeout=300, check=False,
    )
    return proc.returncode, proc.stderr[-4096:]


def main() -> None:
    """All cases, or (with case names as arguments) only those, replaced in the existing file."""
    only = set(sys.argv[1:])
    out = Path(__file__).with_name("failure_samples.json")
    kept = [s for s in json.loads(out.read_text(encoding="utf-8")) if s["case"] not in only] if only else []
    samples = []
    for language, name, filename, code, outcome, error_type in CASES:
        if only and name not in only:
            continue
        exit_code, stderr = run(language, filename, code)
        samples.append(
            {"language": language, "case": name, "exit_code": exit_code, "stderr": stderr,
             "outcome": outcome, "error_type": error_type}
        )
        print(f"{language:<7} {name:<20} exit {exit_code:<4} {stderr.strip().splitlines()[-1:] if stderr else ''}")
    out.write_text(json.dumps(kept + samples, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
