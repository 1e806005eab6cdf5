/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Undefines the macros a consumer of bpf/hooks.def defined, so the next
 * consumer in the same translation unit starts clean. Include right after
 * hooks.def. No include guard on purpose.
 */
#undef BDT_TRACEPOINT
#undef BDT_SYSCALL
#undef BDT_FUNCTION
#undef BDT_DETECTOR
#undef CANDIDATES
#undef ENTER
#undef EXIT
#undef BOTH
#undef REPLACES
#undef DEFERS_TO
#undef ALONGSIDE
#undef NO_EQUIVALENT
#undef LAYOUT
#undef NO_LAYOUT
#undef IF_CHOSEN
#undef IF_NARGS
#undef IF_PARAM
#undef NEEDS
#undef ANY
#undef FULL_WITH
