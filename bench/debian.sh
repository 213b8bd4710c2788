# bench/debian.sh: sourced by the shell benchmarks, which each list the Debian packages of the
# tools they did not find.
#
# install_missing WHO PACKAGE...: installs the packages named (none: does nothing). Not root:
# exits 1 naming them and the command that would install them. WHO prefixes the messages.
install_missing() {
    local who=$1
    shift
    (($#)) || return 0
    ((EUID == 0)) || {
        echo "$who: missing $*; run as root or: sudo apt-get install $*" >&2
        exit 1
    }
    echo "$who: installing from Debian: $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
