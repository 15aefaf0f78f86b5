# tsc compiles a .ts file that node runs; jest runs a test (it needs a package.json).
cat > greet.ts <<'TS'
const greet = (name: string): string => `hi ${name}`;
console.log(greet("ts"));
TS
tsc --strict greet.ts
node greet.js | grep -x 'hi ts' >/dev/null
cat > sum.js <<'JS'
module.exports = (a, b) => a + b;
JS
cat > sum.test.js <<'JS'
const sum = require('./sum');
test('adds', () => { expect(sum(1, 2)).toBe(3); });
JS
echo '{"name": "t", "private": true}' > package.json
jest --ci > jest.out 2>&1 || { cat jest.out; exit 1; }
grep -q "1 passed" jest.out
