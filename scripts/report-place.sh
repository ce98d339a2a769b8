# Sourced by the report scripts.

# put_header MD: replaces MD's first two lines (the generated title) by
# the text on standard input.
put_header() {
	{
		cat
		sed '1,2d' "$1"
	} >"$1.full"
	mv "$1.full" "$1"
}

# place_report OUT GEN [--check]: with
# --check, fails (status 1) when GEN, a regenerated report file or
# directory, differs from the committed OUT; otherwise replaces OUT with GEN.
place_report() {
	local out=$1 gen=$2 mode=${3:-}
	if [ "$mode" = "--check" ]; then
		if ! diff -r "$out" "$gen" >/dev/null 2>&1; then
			echo "$out: regenerated report differs from the committed one (run make reports)"
			diff -r "$out" "$gen" 2>&1 | head -20
			return 1
		fi
		return 0
	fi
	rm -rf "$out"
	mkdir -p "$(dirname "$out")"
	cp -r "$gen" "$out"
	echo "wrote $out"
}
