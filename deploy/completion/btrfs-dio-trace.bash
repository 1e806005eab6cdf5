# bash completion for btrfs-dio-trace(8); installed as
# share/bash-completion/completions/btrfs-dio-trace.
# tests/integration/test_cli_docs.sh checks the *_opts lists against each
# command's --help: keep them in step with src/cli/main.cpp.
_btrfs_dio_trace() {
    local cur prev words cword
    _init_completion || return

    local commands="trace replay doctor dump demo status"
    local trace_opts="-p --pid -c --comm --cgroup -m --mount --backend --events --all-events -f --format -o --output --wall-time --qemu --interval --sort -d --duration --stall-threshold --record --snapshot-dir --snapshot-seconds --snapshot-max --snapshot-interval --snapshot-max-mb --snapshot-events --pin-dir --recorder-events --metrics-addr --ringbuf-size"
    local replay_opts="-f --format -o --output --events --wall-time --stall-threshold --salvage"
    local doctor_opts="-f --format --backend --facts"
    local dump_opts="--pin-dir --vmcore --instance --release --post-mortem --keep -f --format -o --output --salvage --wall-time"
    local demo_opts="-f --format -o --output --backend --events --wall-time --record"
    local status_opts="-f --format"

    # The command: the first word that names one; none means trace.
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            trace | replay | doctor | dump | demo | status) cmd=${words[i]}; break ;;
        esac
    done

    case $prev in
        -f | --format)
            case $cmd in
                replay | dump) COMPREPLY=($(compgen -W "text json chrome" -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "text json" -- "$cur")) ;;
            esac
            return ;;
        --backend) COMPREPLY=($(compgen -W "auto fentry kprobe tracepoint" -- "$cur")); return ;;
        --sort) COMPREPLY=($(compgen -W "vm requests" -- "$cur")); return ;;
        -p | --pid) _pids; return ;;
        -c | --comm) _pnames; return ;;
        -m | --mount | --cgroup | --snapshot-dir | --pin-dir | --post-mortem) _filedir -d; return ;;
        -o | --output | --record | --vmcore) _filedir; return ;;
        -d | --duration | --interval | --stall-threshold | --snapshot-seconds | --snapshot-interval | \
            --snapshot-max | --snapshot-max-mb | --snapshot-events | --recorder-events | --ringbuf-size | \
            --keep | --metrics-addr | --instance)
            return ;;  # a value to type
    esac

    local opts
    case ${cmd:-trace} in
        trace) opts=$trace_opts ;;
        replay) opts=$replay_opts ;;
        doctor) opts=$doctor_opts ;;
        dump) opts=$dump_opts ;;
        demo) opts=$demo_opts ;;
        status) opts=$status_opts ;;
    esac
    if [[ $cur == -* ]]; then
        [[ -z $cmd && $cword -eq 1 ]] && opts+=" -V --version -h --help" || opts+=" -h --help"
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return
    fi
    case $cmd in
        replay | dump) _filedir ;;  # FILE
    esac
} && complete -F _btrfs_dio_trace btrfs-dio-trace
