# `cpack -G DEB` (from the build directory): the Debian package of what
# `cmake --install` installs, with prefix /usr. Runtime dependencies only:
# dpkg-shlibdeps finds the shared libraries the binary links (libbpf, libfmt,
# libelf, zlib, libsystemd, libc, libstdc++), btrfs-progs and mount (losetup)
# are for `demo`; fio only makes demo's benign control run (Recommends).
# Nothing a test needs (qemu, prometheus, nodejs, gtest, clang) is in it.
set(CPACK_PACKAGE_NAME btrfs-dio-trace)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "live tracing and diagnostics for btrfs direct I/O")
set(CPACK_PACKAGE_DESCRIPTION "btrfs-dio-trace watches O_DIRECT requests on btrfs with CO-RE eBPF (extent maps,
ordered extents, send and relocation) and flags the known btrfs failure patterns as they happen,
each finding with the processes, file, byte range and kernel events that justify it. It runs as a
Prometheus exporter for QEMU/KVM hypervisors (btrfs-dio-trace.service), keeps a flight recorder in
bpffs that outlives it, and replays recorded traces through the same detectors.")
set(BDT_PACKAGE_MAINTAINER "btrfs-dio-trace developers <btrfs-dio-trace@localhost>"
    CACHE STRING "Maintainer field of the Debian package")
set(CPACK_PACKAGE_CONTACT "${BDT_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)  # what CPack installs with (CPACK_SET_DESTDIR), whatever this build was configured with
set(CPACK_SET_DESTDIR ON)  # install with prefix /usr into a staging DESTDIR (deploy/install-config.cmake)
set(CPACK_STRIP_FILES TRUE)  # the build keeps its debug info; the package does not
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "btrfs-progs, mount")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "fio")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus, bpftool")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles ${CMAKE_SOURCE_DIR}/deploy/debian/postinst
    ${CMAKE_SOURCE_DIR}/deploy/debian/prerm ${CMAKE_SOURCE_DIR}/deploy/debian/postrm)
include(CPack)
