# `make help`: every target with a `## text` comment, grouped by what a user does with it.
#
# A line `##@ <group>` in the Makefile or an mk/*.mk file puts the targets after it (in that
# file) into <group>; a target before any marker in its file lands in "other", so a new mk file
# shows up without anyone editing this script. Groups print in the order below, then any other
# group name in the order first seen, then "other". POSIX awk only (mawk and gawk both run it).

BEGIN {
    known = "run test deploy operate model develop"
    count = split(known, groups, " ")
    for (i = 1; i <= count; i++) rank[groups[i]] = i
}

FNR == 1 { group = "other" }

/^##@ / { group = $2; next }

/^[a-zA-Z0-9_.-]+:.*## / {
    target = $0
    sub(/:.*/, "", target)
    text = $0
    sub(/^[^#]*## /, "", text)
    if (!(group in rank)) { rank[group] = ++count; groups[count] = group }
    n = ++size[group]
    names[group, n] = target
    texts[group, n] = text
}

END {
    if (!("other" in rank)) { groups[++count] = "other" }
    else {  # "other" always last, even when a marker named it
        for (i = rank["other"]; i < count; i++) groups[i] = groups[i + 1]
        groups[count] = "other"
    }
    for (g = 1; g <= count; g++) {
        group = groups[g]
        if (!size[group]) continue
        # insertion sort by target name (a few dozen entries)
        for (i = 2; i <= size[group]; i++) {
            name = names[group, i]; text = texts[group, i]
            for (j = i - 1; j >= 1 && names[group, j] > name; j--) {
                names[group, j + 1] = names[group, j]; texts[group, j + 1] = texts[group, j]
            }
            names[group, j + 1] = name; texts[group, j + 1] = text
        }
        printf "%s%s:\n", (printed++ ? "\n" : ""), group
        for (i = 1; i <= size[group]; i++) printf "  %-20s %s\n", names[group, i], texts[group, i]
    }
}
