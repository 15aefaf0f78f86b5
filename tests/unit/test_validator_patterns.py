"""Every dangerous pattern declared in languages.yaml fires on code that does the thing,
stays silent on close look-alikes, and ignores comments and string literals."""

from __future__ import annotations

import pytest

from runtime.registry import get_registry
from runtime.validation import CodeValidator, lexical
from runtime.validation.patterns import CompiledPattern, literal_starts, scout_for

# (language, pattern id) -> (positive, close negative)
EXAMPLES: dict[tuple[str, str], tuple[str, str]] = {
    ("python", "eval-exec"): ("result = eval(user_input)\n", "model.eval()\nevaluate(x)\n"),
    ("python", "os-command"): ('os.system("rm -rf /tmp/x")\n', 'os.path.join("a", "b")\nos.getcwd()\n'),
    ("python", "subprocess"): (
        'import subprocess\nsubprocess.run(["ls"])\n',
        "import subprocess_tee\nmysubprocess = 1\n",
    ),
    ("python", "unsafe-deserialization"): (
        "obj = pickle.loads(blob)\n",
        "obj = json.loads(blob)\nyaml.load(f, Loader=yaml.SafeLoader)\npickle.dumps(obj)\n",
    ),
    ("python", "dynamic-loading"): ('mod = importlib.import_module(name)\n', 'importlib.metadata.version("x")\n'),
    ("node", "eval"): ("const r = eval(code);\n", "const r = evaluate(code);\nsetTimeout(() => run(), 10);\n"),
    ("node", "child-process"): (
        "const cp = require('child_process');\n",
        "const cp = require('child_process_mock');\n",
    ),
    ("node", "vm-module"): ("vm.runInNewContext(src, sandbox);\n", "const vmName = 'x'; myvm.run(src);\n"),
    ("node", "unsafe-deserialization"): (
        "const s = require('node-serialize');\n",
        "const s = require('serialize-error');\nJSON.parse(text);\n",
    ),
    ("node", "dynamic-loading"): ("const m = require(modName);\n", "const fs = require('fs');\n"),
    ("java", "process-exec"): (
        'Runtime.getRuntime().exec("ls");\n',
        "int n = Runtime.getRuntime().availableProcessors();\n",
    ),
    ("java", "unsafe-deserialization"): (
        "ObjectInputStream in = new ObjectInputStream(socket.getInputStream());\n",
        "ObjectOutputStream out = new ObjectOutputStream(stream);\n",
    ),
    ("java", "dynamic-loading"): (
        "Class<?> c = Class.forName(name);\n",
        "String n = MyClass.class.getName();\nlong t = System.currentTimeMillis();\n",
    ),
    ("java", "dynamic-code"): (
        'ScriptEngine e = new ScriptEngineManager().getEngineByName("js");\n',
        "ScriptEngineManagerTest t = null;\n",
    ),
    ("go", "os-exec"): ('out, err := exec.Command("ls", "-l").Output()\n', 'cmd := myexec.Command("ls")\n'),
    ("go", "native-code"): ('import "C"\n', 'import "fmt"\n'),
    ("go", "unsafe"): ("p := unsafe.Pointer(&x)\n", "p := &x\nsize := unsafe.Sizeof(x)\n"),
    ("ruby", "eval"): ("eval(code)\n", "evaluate(code)\nmy_eval = 1\n"),
    ("ruby", "shell-command"): ('system("ls -l")\n', 'file_system = "ext4"\nsystem_name = 1\n'),
    ("ruby", "unsafe-deserialization"): ("obj = Marshal.load(data)\n", "data = Marshal.dump(obj)\n"),
    ("ruby", "dynamic-loading"): ("require name\n", 'require "json"\nrequire_relative "lib/x"\n'),
    ("php", "eval"): ("<?php eval($code);\n", "<?php $obj->evaluate($code);\n"),
    ("php", "shell-command"): ("<?php echo shell_exec($cmd);\n", "<?php $db->exec($sql);\n"),
    ("php", "unsafe-deserialization"): ("<?php $o = unserialize($data);\n", "<?php $o = json_decode($data);\n"),
    ("php", "dynamic-loading"): ("<?php include $page;\n", "<?php require_once 'vendor/autoload.php';\n"),
    ("csharp", "process-start"): (
        'Process.Start("ls");\n',
        "var p = Process.GetCurrentProcess();\nMyProcess.Start(x);\n",
    ),
    ("csharp", "unsafe-deserialization"): (
        "var f = new BinaryFormatter();\n",
        "var f = new BinaryReader(stream);\n",
    ),
    ("csharp", "dynamic-loading"): (
        "var a = Assembly.LoadFrom(path);\n",
        "var a = Assembly.GetExecutingAssembly();\n",
    ),
    ("csharp", "dynamic-code"): (
        "var r = await CSharpScript.EvaluateAsync(code);\n",
        "var r = await Calculator.EvaluateAsync(code);\n",
    ),
    ("powershell", "invoke-expression"): ("iex $command\n", "Invoke-ExpressionHelper -Name x\n$iexPath = 1\n"),
    ("powershell", "process-start"): ("Start-Process notepad.exe\n", "Start-Sleep -Seconds 1\n"),
    ("powershell", "unsafe-deserialization"): ("$o = Import-Clixml -Path $file\n", "$o = Export-Clixml -Path $file\n"),
    ("powershell", "dynamic-loading"): ("Add-Type -TypeDefinition $src\n", "Add-Content -Path $f -Value 1\n"),
}

# Dangerous-looking text that is only a comment or a string literal.
INERT: dict[str, str] = {
    "python": '# os.system("ls") and eval(x)\ns = "subprocess.run(x); eval(y)"\nd = """\npickle.loads(b)\n"""\n',
    "node": "// eval(x)\n/* require('child_process') */\nconst s = \"eval(x)\";\nconst t = `vm.runInNewContext(a)`;\n",
    "java": '// Runtime.getRuntime().exec("x")\n/* new ProcessBuilder */\nString s = "Class.forName(x)";\n',
    "go": '// exec.Command("ls")\ns := "plugin.Open(x)"\nr := `unsafe.Pointer`\n',
    "ruby": "# system('ls')\ns = \"eval(x)\"\nt = 'Marshal.load(d)'\n=begin\nexec 'ls'\n=end\n",
    "php": "<?php\n// eval($x);\n# shell_exec($c);\n/* unserialize($d) */\n$s = 'system(1)';\n",
    "csharp": '// Process.Start("x");\nvar s = "Assembly.LoadFrom(p)";\nvar v = @"new BinaryFormatter()";\n',
    "powershell": "# iex $x\n<# Start-Process x #>\n$s = 'Add-Type -TypeDefinition $x'\n$t = \"Import-Clixml f\"\n",
}


def declared() -> set[tuple[str, str]]:
    return {(lang.name, p.id) for lang in get_registry().languages.values() for p in lang.dangerous_patterns}


@pytest.fixture(scope="module")
def validator() -> CodeValidator:
    return CodeValidator(get_registry())


def rule_ids(validator: CodeValidator, code: str, language: str) -> set[str]:
    return {f.rule_id for f in validator.validate(code, language)}


def test_every_declared_pattern_has_a_positive_and_negative_example() -> None:
    missing = declared() - set(EXAMPLES)
    stale = set(EXAMPLES) - declared()
    assert not missing, f"declared patterns without examples: {sorted(missing)}"
    assert not stale, f"examples for patterns no longer declared: {sorted(stale)}"


def test_every_seed_language_declares_dangerous_patterns() -> None:
    languages = {"python", "node", "java", "go", "ruby", "php", "csharp", "powershell"}
    assert languages <= {lang for lang, _ in declared()}


@pytest.mark.parametrize(("language", "pattern_id"), sorted(EXAMPLES))
def test_pattern_fires_on_positive_example(validator: CodeValidator, language: str, pattern_id: str) -> None:
    positive, _ = EXAMPLES[(language, pattern_id)]
    assert f"pattern.{language}.{pattern_id}" in rule_ids(validator, positive, language)


@pytest.mark.parametrize(("language", "pattern_id"), sorted(EXAMPLES))
def test_pattern_silent_on_close_negative(validator: CodeValidator, language: str, pattern_id: str) -> None:
    _, negative = EXAMPLES[(language, pattern_id)]
    assert f"pattern.{language}.{pattern_id}" not in rule_ids(validator, negative, language)


@pytest.mark.parametrize("language", sorted(INERT))
def test_patterns_ignore_comments_and_strings(validator: CodeValidator, language: str) -> None:
    fired = {r for r in rule_ids(validator, INERT[language], language) if r.startswith("pattern.")}
    assert fired == set()


def test_backtick_commands_count_in_ruby_and_php(validator: CodeValidator) -> None:
    assert "pattern.ruby.shell-command" in rule_ids(validator, "out = `ls -l`\n", "ruby")
    assert "pattern.php.shell-command" in rule_ids(validator, "<?php $out = `ls -l`;\n", "php")


def test_finding_points_at_the_match(validator: CodeValidator) -> None:
    code = "x = 1\nif x:\n    y = eval(s)\n"
    (finding,) = [f for f in validator.validate(code, "python") if f.rule_id == "pattern.python.eval-exec"]
    assert (finding.line, finding.column, finding.severity) == (3, 9, "warning")


def test_alias_resolves_to_the_language_patterns(validator: CodeValidator) -> None:
    assert "pattern.node.eval" in rule_ids(validator, "eval(x);\n", "ts")


def test_fast_paths_find_exactly_what_the_full_pattern_finds() -> None:
    corpus = "\n".join(p + n for p, n in EXAMPLES.values()) + "\n" + "\n".join(INERT.values())
    corpus = corpus * 3 + "x.eval(eval(eval(1)))  system system(\nIEX $a; InVoKe-ExPrEsSiOn $b; START-process x\n"
    folded = corpus.casefold()
    assert len(folded) == len(corpus)
    for lang in get_registry().languages.values():
        for pattern in lang.dangerous_patterns:
            compiled = CompiledPattern.of(pattern, lang.name)
            expected = [m.span() for m in compiled.full.finditer(corpus)]
            assert [m.span() for m in compiled.matches(corpus)] == expected, pattern.id  # scout (or plain)
            assert [m.span() for m in compiled.matches(corpus, folded)] == expected, pattern.id  # literals


def test_literal_starts_cover_every_branch() -> None:
    assert literal_starts(r"\bos\.(?:system|popen)\s*\(") == (("os.popen", "os.system"), False)
    assert literal_starts(r"(?i)(?<![\w-])(?:Invoke-Expression|iex)\b") == (("iex", "invoke-expression"), True)
    assert literal_starts(r"eval|[a-z]+\(") is None  # a branch without a literal start
    assert literal_starts(r"(?i:aws)secret") is None  # scoped flags: not handled, so no shortcut


@pytest.mark.parametrize(
    ("regex", "scout"),
    [
        (r"\bfoo\(", "foo\\("),
        (r"(?<![\w.])eval|\bexec", "eval|exec"),
        (r"(?i)(?<![\w-])iex(?![\w-])", "(?i)iex(?![\\w-])"),
        (r"(?<![\w$>:\\])dl\s*\(", r"dl\s*\("),
    ],
)
def test_scout_strips_only_leading_assertions(regex: str, scout: str) -> None:
    compiled = scout_for(regex)
    assert compiled is not None and compiled.pattern == scout


def test_scout_declines_patterns_without_leading_assertions() -> None:
    assert scout_for(r"os\.system\(") is None
    assert scout_for(r"\b") is None


LEXER_SAMPLES = [
    'a = "esc \\" q" # c\nb = \'it\\\'s\' /* x * y */ z /**/ @"ver ""q"" " $"i{1}" """raw""" <# bl #> @"\nhere\n"@\n',
    'x = "unterminated\n/* open comment\n\'\'\' open\n`tick\n',
    "=begin\nsystem('x')\n=end\nputs `ls` # done\n",
]


@pytest.mark.parametrize("language", sorted(INERT))
def test_lexer_fast_path_equals_a_plain_scan(language: str) -> None:
    compiled = lexical._compiled(language)
    assert compiled is not None
    lexer, first, slow_if = compiled
    examples = "\n".join(p + n for (lang, _), (p, n) in EXAMPLES.items() if lang == language)
    texts = [*LEXER_SAMPLES, INERT[language], examples]
    for text in texts:
        if slow_if and slow_if in text:
            continue  # such texts take the plain scan anyway
        assert [m.span() for m in lexical._jump(text, lexer, first)] == [m.span() for m in lexer.finditer(text)]


@pytest.mark.parametrize(
    ("language", "code", "inside", "outside"),
    [
        ("python", 'x = "a # b"  # c\n', ["a # b", "# c"], ["x ="]),
        ("node", "let s = `t ${x}`; /* c */ f()\n", ["t ${x}", "c */"], ["f()"]),
        ("csharp", 'var v = @"a ""q"" b"; g();\n', ['a ""q'], ["g();"]),
        ("powershell", "<# block #>\n$s = 'it''s'; Get-Item\n", ["block", "t''s"], ["Get-Item"]),
        ("ruby", "=begin\nnote\n=end\nputs 1\n", ["note"], ["puts 1"]),
    ],
)
def test_mask_hides_comment_and_string_bodies(language: str, code: str, inside: list[str], outside: list[str]) -> None:
    mask = lexical.CodeMask(code, language)
    for text in inside:
        assert mask.hidden(code.index(text)), text
    for text in outside:
        assert not mask.hidden(code.index(text)), text
