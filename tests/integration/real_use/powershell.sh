# A pipeline computes a sum.
pwsh -NoLogo -NoProfile -Command '1..3 | Measure-Object -Sum | ForEach-Object Sum' | grep -x 6 >/dev/null
