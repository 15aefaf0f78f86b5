"""Package installs on a real engine: each language's own install command, unmodified, as the
sandbox user, with the image's read-only root — and the install persisted per project.

Each test installs in one task of a project, uses it there and in the project's next task, and
shows that a task of another project does not see it. PyPI and npm are reachable from these
machines, so pip and npm install real packages; RubyGems, Packagist and the Go module proxy
are not, so gem, composer, go and maven install from a local source the test writes, which still
proves where the install goes and that the language finds it without the agent setting anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import docker
import pytest

from runtime.registry import get_registry
from runtime.sandbox.handle import Sandbox
from runtime.sandbox.manager import ContainerManager

from .conftest import image_or_skip

pytestmark = pytest.mark.integration
INSTALL_TIMEOUT = 300  # a package index behind a proxy, on 2 cores


async def ok(box: Sandbox, command: str, *, timeout: float = 60, env: Mapping[str, str] | None = None) -> str:
    """Run `command`; its stdout, or a failure that shows what it printed."""
    result = await box.exec(command, timeout=timeout, env=env)
    assert result.exit_code == 0 and not result.timed_out, (
        f"{command!r} exited {result.exit_code}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


async def fails(box: Sandbox, command: str) -> str:
    """Run `command`, which must fail; what it printed on stderr."""
    result = await box.exec(command, timeout=60)
    assert result.exit_code != 0, f"{command!r} succeeded where it must not:\n{result.stdout[-2000:]}"
    return result.stderr


@pytest.fixture
async def projects(manager: ContainerManager, unique: str) -> AsyncIterator[tuple[str, str]]:
    """Two fresh projects (the one that installs, and another); their volumes are removed after."""
    pair = (f"pk{unique}", f"po{unique}")
    yield pair
    for project in pair:
        await manager.delete_project_volume(project)


def _path(language: str) -> str:
    packages = get_registry().resolve(language).packages
    assert packages is not None, f"languages.yaml declares no packages for {language}"
    return packages.path


PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "hello-editable"
version = "0.1.0"

[project.scripts]
hello-editable = "hello_editable:main"
"""


async def test_pip_install_persists_in_the_project_and_nowhere_else(
    manager: ContainerManager, docker_client: docker.DockerClient, projects: tuple[str, str], unique: str
) -> None:
    image_or_skip(docker_client, "python")
    project, other = projects
    target = _path("python")
    async with manager.task(f"a{unique}", project, "python") as box:
        shipped = (await ok(box, "python3 -c 'import packaging; print(packaging.__version__)'")).strip()
        newer = "24.1" if shipped == "24.2" else "24.2"  # any version the image does not ship
        await ok(box, f"pip install -q six==1.17.0 packaging=={newer}", timeout=INSTALL_TIMEOUT)
        where = await ok(box, "python3 -c 'import six; print(six.__file__)'")
        assert where.startswith(f"{target}/"), where
        # An install shadows the image's copy, as it would on a laptop; the image's file is untouched.
        assert (await ok(box, "python3 -c 'import packaging; print(packaging.__version__)'")).strip() == newer
        # `python -m pip` and an editable install of a project in the workspace, with its script on PATH.
        await box.write_files({
            "src/pyproject.toml": PYPROJECT,
            "src/hello_editable.py": "def main():\n    print('hello from an editable install')\n",
        })
        await ok(box, "python3 -m pip install -q -e /workspace/src", timeout=INSTALL_TIMEOUT)
        assert (await ok(box, "hello-editable")).strip() == "hello from an editable install"
    async with manager.task(f"b{unique}", project, "python") as box:  # the project's next task
        assert (await ok(box, "python3 -c 'import six; print(six.__version__)'")).strip() == "1.17.0"
        assert (await ok(box, "python3 -c 'import packaging; print(packaging.__version__)'")).strip() == newer
        await box.write_files({"src/hello_editable.py": "def main():\n    print('edited')\n"})
        assert (await ok(box, "hello-editable")).strip() == "edited"  # editable: the source, not a copy
        assert "six" in await ok(box, "pip list --user --format=freeze")
    async with manager.task(f"c{unique}", other, "python") as box:
        assert "No module named 'six'" in await fails(box, "python3 -c 'import six'")
        assert (await ok(box, "python3 -c 'import packaging; print(packaging.__version__)'")).strip() == shipped
        await fails(box, "command -v hello-editable")


async def test_npm_install_global_persists_in_the_project_and_nowhere_else(
    manager: ContainerManager, docker_client: docker.DockerClient, projects: tuple[str, str], unique: str
) -> None:
    image_or_skip(docker_client, "node")
    project, other = projects
    target = _path("node")
    async with manager.task(f"a{unique}", project, "node") as box:
        # `json` (a zero-dependency CLI): neither the image nor Debian's node modules have it.
        await ok(box, "npm install -g --no-fund --no-audit json@11.0.0", timeout=INSTALL_TIMEOUT)
        assert (await ok(box, "command -v json")).strip() == f"{target}/bin/json"
        assert (await ok(box, "echo '{\"a\": 7}' | json a")).strip() == "7"
        assert (await ok(box, "node -p \"require.resolve('json')\"")).startswith(f"{target}/lib/node_modules/json/")
        # A plain `npm install` in a project of the workspace, as ever.
        await ok(box, "mkdir -p app && cd app && npm init -y >/dev/null && npm install --no-fund --no-audit "
                      "is-number@7.0.0", timeout=INSTALL_TIMEOUT)
        assert (await ok(box, "cd app && node -e \"console.log(require('is-number')(5))\"")).strip() == "true"
        assert "typescript" not in await ok(box, "npm ls -g --depth=0")  # the image's globals stay as built
        assert "Version 5" in await ok(box, "tsc --version")
    async with manager.task(f"b{unique}", project, "node") as box:
        assert (await ok(box, "echo '[1, 2]' | json 1")).strip() == "2"
    async with manager.task(f"c{unique}", other, "node") as box:
        await fails(box, "command -v json")
        assert "Cannot find module 'json'" in await fails(box, "node -e \"require('json')\"")


GEMSPEC = """\
Gem::Specification.new do |s|
  s.name = "hello-local"
  s.version = "0.1.0"
  s.summary = "a gem built in the sandbox"
  s.authors = ["test"]
  s.files = ["lib/hello_local.rb", "bin/hello-local"]
  s.executables = ["hello-local"]
end
"""


async def test_gem_install_persists_in_the_project_and_nowhere_else(
    manager: ContainerManager, docker_client: docker.DockerClient, projects: tuple[str, str], unique: str
) -> None:
    image_or_skip(docker_client, "ruby")
    project, other = projects
    target = _path("ruby")
    async with manager.task(f"a{unique}", project, "ruby") as box:
        # rubygems.org is not reachable here: the gem is built from a source in the workspace.
        await box.write_files({
            "gem/hello-local.gemspec": GEMSPEC,
            "gem/lib/hello_local.rb": "module HelloLocal\n  def self.hi = 'hello from a gem'\nend\n",
            "gem/bin/hello-local": "#!/usr/bin/env ruby\nrequire 'hello_local'\nputs HelloLocal.hi\n",
        })
        await ok(box, "cd gem && gem build -q hello-local.gemspec && gem install --local --no-document "
                      "./hello-local-0.1.0.gem", timeout=INSTALL_TIMEOUT)
        assert (await ok(box, "command -v hello-local")).strip() == f"{target}/bin/hello-local"
        # Bundler resolves it from the installed gems (no source is reachable) and the image's gems too.
        await box.write_files({"app/Gemfile": 'source "https://rubygems.org"\ngem "hello-local"\ngem "rspec"\n'})
        await ok(box, "cd app && bundle install --local", timeout=INSTALL_TIMEOUT)
        assert "hello from a gem" in await ok(box, "cd app && bundle exec ruby -e 'require \"hello_local\"; "
                                                   "puts HelloLocal.hi'")
    async with manager.task(f"b{unique}", project, "ruby") as box:
        assert (await ok(box, "hello-local")).strip() == "hello from a gem"
        assert "rails" in (await ok(box, "gem list rails")).lower()  # the image's gems are still found
    async with manager.task(f"c{unique}", other, "ruby") as box:
        await fails(box, "command -v hello-local")
        await fails(box, "ruby -e 'require \"hello_local\"'")


async def test_composer_global_require_persists_in_the_project_and_nowhere_else(
    manager: ContainerManager, docker_client: docker.DockerClient, projects: tuple[str, str], unique: str
) -> None:
    image_or_skip(docker_client, "php")
    project, other = projects
    target = _path("php")
    async with manager.task(f"a{unique}", project, "php") as box:
        # Packagist is not reachable here: the package comes from a path repository in the workspace.
        await box.write_files({
            "lib/hello/composer.json": '{"name": "acme/hello", "version": "1.0.0", "bin": ["bin/hello"]}\n',
            "lib/hello/bin/hello": "#!/usr/bin/env php\n<?php echo \"hello from composer\\n\";\n",
        })
        await ok(box, "chmod +x lib/hello/bin/hello"
                      " && composer global config repositories.local "
                      "'{\"type\": \"path\", \"url\": \"/workspace/lib/hello\", \"options\": {\"symlink\": false}}'"
                      " && composer global config repo.packagist false"
                      " && composer global require --no-interaction --no-progress acme/hello:1.0.0",
                 timeout=INSTALL_TIMEOUT)
        assert (await ok(box, "command -v hello")).strip() == f"{target}/vendor/bin/hello"
        assert (await ok(box, "hello")).strip() == "hello from composer"
    async with manager.task(f"b{unique}", project, "php") as box:
        assert (await ok(box, "hello")).strip() == "hello from composer"
    async with manager.task(f"c{unique}", other, "php") as box:
        await fails(box, "command -v hello")


# A module proxy in the workspace (the layout `GOPROXY=file://` reads), written by the base's
# Python: proxy.golang.org is not reachable here.
GO_PROXY = r"""
import json, os, zipfile
root = "/workspace/proxy/example.com/hello/@v"
os.makedirs(root, exist_ok=True)
mod = "module example.com/hello\n\ngo 1.21\n"
main = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from go install") }\n'
open(f"{root}/list", "w").write("v0.1.0\n")
open(f"{root}/v0.1.0.info", "w").write(json.dumps({"Version": "v0.1.0"}))
open(f"{root}/v0.1.0.mod", "w").write(mod)
with zipfile.ZipFile(f"{root}/v0.1.0.zip", "w") as z:
    z.writestr("example.com/hello@v0.1.0/go.mod", mod)
    z.writestr("example.com/hello@v0.1.0/main.go", main)
"""
GO_ENV = {"GOPROXY": "file:///workspace/proxy", "GOSUMDB": "off"}


async def test_go_install_and_get_persist_in_the_project_and_nowhere_else(
    manager: ContainerManager, docker_client: docker.DockerClient, projects: tuple[str, str], unique: str
) -> None:
    image_or_skip(docker_client, "go")
    project, other = projects
    target = _path("go")
    async with manager.task(f"a{unique}", project, "go") as box:
        await box.write_files({"proxy.py": GO_PROXY})
        await ok(box, "/usr/bin/python3 proxy.py")
        await ok(box, "go install example.com/hello@v0.1.0", env=GO_ENV, timeout=INSTALL_TIMEOUT)
        assert (await ok(box, "command -v hello")).strip() == f"{target}/bin/hello"
        await ok(box, "mkdir app && cd app && go mod init app && go get example.com/hello@v0.1.0",
                 env=GO_ENV, timeout=INSTALL_TIMEOUT)
    async with manager.task(f"b{unique}", project, "go") as box:
        assert (await ok(box, "hello")).strip() == "hello from go install"
        # The module downloaded by `go get` is in the project's module cache: no proxy needed now.
        await ok(box, f"ls {target}/pkg/mod/example.com/hello@v0.1.0/main.go")
        await ok(box, "cd app && go mod download example.com/hello", env={"GOPROXY": "off", "GOSUMDB": "off"})
    async with manager.task(f"c{unique}", other, "go") as box:
        await fails(box, "command -v hello")


GREETER_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId><artifactId>greeter</artifactId><version>1.0</version>
</project>
"""
APP_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>demo</groupId><artifactId>app</artifactId><version>1.0</version>
  <properties>
    <maven.compiler.source>17</maven.compiler.source><maven.compiler.target>17</maven.compiler.target>
  </properties>
  <repositories><repository><id>local</id><url>file:///workspace/repo</url></repository></repositories>
  <dependencies>
    <dependency><groupId>com.example</groupId><artifactId>greeter</artifactId><version>1.0</version></dependency>
  </dependencies>
</project>
"""


async def test_maven_downloads_persist_in_the_project_and_nowhere_else(
    manager: ContainerManager, docker_client: docker.DockerClient, projects: tuple[str, str], unique: str
) -> None:
    image_or_skip(docker_client, "java")
    project, other = projects
    local = f"{_path('java')}/m2"
    jar = "com/example/greeter/1.0/greeter-1.0.jar"
    async with manager.task(f"a{unique}", project, "java") as box:
        # Maven Central is not reachable here: the dependency comes from a file:// repository the test
        # writes; the plugins come from Debian's repository, as in any build in this image.
        await box.write_files({
            "greeter/com/example/Greeter.java": "package com.example;\npublic class Greeter "
                                                "{ public static String hi() { return \"hello from maven\"; } }\n",
            "repo/com/example/greeter/1.0/greeter-1.0.pom": GREETER_POM,
            "app/pom.xml": APP_POM,
            "app/src/main/java/demo/App.java":
                "package demo;\npublic class App { public static void main(String[] a) "
                "{ System.out.println(com.example.Greeter.hi()); } }\n",
        })
        await ok(box, "cd greeter && javac -d classes com/example/Greeter.java"
                      " && jar cf /workspace/repo/com/example/greeter/1.0/greeter-1.0.jar -C classes .")
        await ok(box, "cd app && mvn -B -q package", timeout=INSTALL_TIMEOUT)  # the ordinary command
        await ok(box, f"ls {local}/{jar}")
        assert (await ok(box, f"java -cp app/target/app-1.0.jar:{local}/{jar} demo.App")).strip() == "hello from maven"
    async with manager.task(f"b{unique}", project, "java") as box:
        # The source repository is gone and Maven is offline: everything comes from the project's repository.
        await ok(box, "rm -rf repo app/target && cd app && mvn -B -q -o package", timeout=INSTALL_TIMEOUT)
        assert (await ok(box, f"java -cp app/target/app-1.0.jar:{local}/{jar} demo.App")).strip() == "hello from maven"
    async with manager.task(f"c{unique}", other, "java") as box:
        await fails(box, f"ls {local}/{jar}")
