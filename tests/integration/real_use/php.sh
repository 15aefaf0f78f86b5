# A script runs; composer validates a composer.json.
echo '<?php echo array_sum([1, 2, 3]), "\n";' > sum.php
php sum.php | grep -x 6 >/dev/null
cat > composer.json <<'JSON'
{"name": "theappapp/check", "description": "check", "type": "project", "license": "MIT", "require": {}}
JSON
composer validate --no-check-publish --no-ansi
