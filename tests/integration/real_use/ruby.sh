# rspec runs a spec; rails answers.
mkdir -p spec
cat > spec/calc_spec.rb <<'RB'
RSpec.describe "addition" do
  it("adds") { expect(2 + 3).to eq(5) }
end
RB
rspec > rspec.out 2>&1 || { cat rspec.out; exit 1; }
grep -q "1 example, 0 failures" rspec.out
rails -v | grep "Rails 7" >/dev/null
