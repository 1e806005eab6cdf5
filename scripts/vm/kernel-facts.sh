# Guest side of scripts/vm/kernel-facts: prints what a kernel offers the
# tool's backends (BTF, function symbols, ftrace-able functions, tracepoints,
# bpftool's feature probe, real fentry/fexit/kprobe attaches). Runs under
# busybox sh inside scripts/vmtest; plain text, one fact a line.

echo "== kernel"
uname -a
for f in /sys/kernel/btf/vmlinux /sys/kernel/btf/btrfs; do
	if [ -e "$f" ]; then echo "present: $f ($(wc -c <"$f") bytes)"; else echo "MISSING: $f"; fi
done
grep -E ' (btrfs|iomap)' /proc/filesystems 2>/dev/null

# Functions the hooks need, plus alternatives across versions.
funcs="btrfs_get_extent add_extent_mapping btrfs_add_extent_mapping merge_extent_mapping
btrfs_drop_extent_map_range btrfs_replace_extent_map_range free_extent_buffer find_extent_buffer
alloc_extent_buffer check_buffer_tree_ref release_extent_buffer free_extent_buffer_stale
btrfs_release_extent_buffer_pages btrfs_finish_ordered_io btrfs_finish_one_ordered
btrfs_split_ordered_extent btrfs_ioctl_send _btrfs_ioctl_send btrfs_ioctl_balance btrfs_balance
btrfs_relocate_block_group btrfs_relocate_chunk btrfs_reclaim_bgs_work btrfs_reclaim_bgs btrfs_rm_device
btrfs_shrink_device btrfs_ioctl_resize btrfs_dev_replace_by_ioctl btrfs_check_data_csum
btrfs_print_data_csum_error btrfs_check_read_bio check_data_csum btrfs_data_csum_ok btrfs_csum_one_bio
btrfs_lookup_bio_sums btrfs_dio_iomap_begin btrfs_dio_iomap_end btrfs_dio_write btrfs_dio_read
btrfs_direct_write btrfs_direct_read btrfs_direct_IO btrfs_dio_submit_io btrfs_submit_direct
btrfs_end_dio_bio btrfs_dio_end_io btrfs_do_write_iter btrfs_file_write_iter btrfs_file_read_iter
btrfs_buffered_write __iomap_dio_rw iomap_dio_rw iomap_dio_complete iomap_dio_bio_end_io
iomap_dio_complete_work btrfs_lookup_first_ordered_extent btrfs_lookup_ordered_range
btrfs_start_ordered_extent btrfs_alloc_ordered_extent btrfs_add_ordered_extent
btrfs_remove_ordered_extent btrfs_mark_ordered_io_finished btrfs_dec_test_ordered_pending"

# One awk pass per file: busybox grep over ~150k lines is slow under TCG.
echo "== /proc/kallsyms (name type module; suffixed parts like .cold/.part.N/.llvm.N included)"
awk -v list="$funcs" '
	BEGIN { n = split(list, a); for (i = 1; i <= n; i++) want[a[i]] = 1 }
	{ base = $3; sub(/\..*/, "", base)
	  if (base in want) hits[base] = hits[base] $3 " " $2 " " ($4 == "" ? "[vmlinux]" : $4) "; " }
	END { for (i = 1; i <= n; i++) print "kallsyms: " (a[i] in hits ? a[i] " -> " hits[a[i]] : "MISSING " a[i]) }
' /proc/kallsyms

echo "== ftrace-able (available_filter_functions; needed by fentry/fexit and kprobe-on-ftrace)"
awk -v list="$funcs" '
	BEGIN { n = split(list, a); for (i = 1; i <= n; i++) want[a[i]] = 1 }
	{ base = $1; sub(/\..*/, "", base); if (base in want) hits[base] = hits[base] $0 "; " }
	END { for (i = 1; i <= n; i++) print "ftrace: " (a[i] in hits ? "yes " a[i] " -> " hits[a[i]] : "no  " a[i]) }
' /sys/kernel/tracing/available_filter_functions

echo "== kprobe blacklist entries for btrfs/iomap"
grep -E 'btrfs|iomap' /sys/kernel/debug/kprobes/blacklist 2>/dev/null | head -20
echo "(end of blacklist entries)"

echo "== BTF FUNC entries (bpftool btf dump)"
if command -v bpftool >/dev/null; then
	bpftool btf dump file /sys/kernel/btf/btrfs -B /sys/kernel/btf/vmlinux 2>/dev/null | grep -E "^\[[0-9]+\] FUNC '" | sed "s/.*FUNC '\([^']*\)'.*/\1/" >/tmp/btf-btrfs.txt
	bpftool btf dump file /sys/kernel/btf/vmlinux 2>/dev/null | grep -E "^\[[0-9]+\] FUNC '" | sed "s/.*FUNC '\([^']*\)'.*/\1/" >/tmp/btf-vmlinux.txt
	echo "btf: btrfs module has $(wc -l </tmp/btf-btrfs.txt) FUNCs, vmlinux $(wc -l </tmp/btf-vmlinux.txt)"
	awk -v list="$funcs" '
		BEGIN { n = split(list, a) }
		FILENAME ~ /btrfs/ { m[$1] = m[$1] " btrfs"; next }
		{ m[$1] = m[$1] " vmlinux" }
		END { for (i = 1; i <= n; i++) print "btf: " a[i] ":" (a[i] in m ? m[a[i]] : " MISSING") }
	' /tmp/btf-btrfs.txt /tmp/btf-vmlinux.txt
else
	echo "btf: bpftool not in the guest"
fi

echo "== tracepoints (events/btrfs, events/iomap, events/writeback subset)"
T=/sys/kernel/tracing/events
for tp in iomap/iomap_dio_rw_begin iomap/iomap_dio_complete iomap/iomap_dio_rw_queued btrfs/btrfs_get_extent \
	btrfs/btrfs_handle_em_exist btrfs/btrfs_finish_ordered_extent btrfs/btrfs_reclaim_block_group \
	btrfs/btrfs_ordered_extent_add btrfs/btrfs_ordered_extent_remove btrfs/btrfs_ordered_extent_start \
	btrfs/btrfs_ordered_extent_put btrfs/btrfs_ordered_extent_lookup btrfs/btrfs_ordered_extent_split \
	btrfs/btrfs_ordered_extent_mark_finished btrfs/btrfs_ordered_extent_dec_test_pending \
	btrfs/btrfs_add_block_group btrfs/btrfs_remove_block_group btrfs/btrfs_skip_unused_block_group \
	btrfs/btrfs_chunk_alloc btrfs/btrfs_chunk_free btrfs/btrfs_relocate_chunk; do
	if [ -d $T/$tp ]; then echo "tracepoint: yes $tp"; else echo "tracepoint: no  $tp"; fi
done
echo "tracepoints in events/btrfs: $(ls $T/btrfs | grep -v -e '^enable$' -e '^filter$' | wc -l)"
ls $T/btrfs | grep -v -e '^enable$' -e '^filter$' | tr '\n' ' '; echo
echo "tracepoints in events/iomap: $(ls $T/iomap 2>/dev/null | grep -v -e '^enable$' -e '^filter$' | tr '\n' ' ')"

if command -v bpftool >/dev/null; then
	echo "== bpftool feature probe kernel (selected)"
	bpftool feature probe kernel 2>/dev/null >/tmp/feat.txt
	grep -E "CONFIG_(BPF|DEBUG_INFO_BTF|KPROBE|FTRACE|FUNCTION_TRACER|DYNAMIC_FTRACE)|program_type (kprobe|tracepoint|raw_tracepoint|tracing|perf_event) |map_type (ringbuf|stack_trace|perf_event_array|percpu_array|hash|lru_hash|task_storage) |JIT|bpf\(\) syscall|large program|bounded loop" -i /tmp/feat.txt
	for h in bpf_get_stack bpf_get_stackid bpf_find_vma bpf_ringbuf_output bpf_ringbuf_reserve bpf_get_func_ip bpf_get_attach_cookie bpf_probe_read_kernel bpf_get_current_task_btf bpf_copy_from_user bpf_get_func_arg bpf_get_func_ret bpf_loop; do
		echo "helper $h: kprobe=$(sed -n '/eBPF helpers supported for program type kprobe:/,/^$/p' /tmp/feat.txt | grep -qw "$h" && echo yes || echo no)" \
			"tracing=$(sed -n '/eBPF helpers supported for program type tracing:/,/^$/p' /tmp/feat.txt | grep -qw "$h" && echo yes || echo no)"
	done
fi

echo "note: bpftool probes the tracing type without an fentry/fexit attach type, so helpers allowed only there (bpf_get_func_arg/ret, bpf_get_attach_cookie) read as no"
if [ -x /bdt/bin/probe-attach ]; then
	echo "== real attaches (probe-attach: open, load, attach, detach)"
	/bdt/bin/probe-attach /bdt/bin/probe-attach.bpf.o $funcs
fi
echo "== end of kernel facts"
