# pytest runs a test module, mypy --strict accepts it and rejects a type error.
cat > calc.py <<'PY'
def add(a: int, b: int) -> int:
    return a + b
PY
cat > test_calc.py <<'PY'
from calc import add


def test_add() -> None:
    assert add(2, 3) == 5
PY
python3 -m pytest -q -p no:cacheprovider test_calc.py | grep "1 passed" >/dev/null
mypy --strict calc.py test_calc.py
echo 'x: int = "no"' > bad.py
! mypy bad.py
python3 -c "import numpy, pandas; print(pandas.DataFrame({'a': numpy.arange(3)}).a.sum())" | grep -x 3 >/dev/null
