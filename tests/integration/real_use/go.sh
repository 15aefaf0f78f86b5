# go test on a module package (offline: no dependencies).
mkdir -p calc && cd calc
go mod init example.com/calc 2>/dev/null
cat > calc.go <<'GO'
package calc

func Add(a, b int) int { return a + b }
GO
cat > calc_test.go <<'GO'
package calc

import "testing"

func TestAdd(t *testing.T) {
	if Add(2, 3) != 5 {
		t.Fatal("2 + 3 != 5")
	}
}
GO
go test ./... | grep '^ok' >/dev/null
