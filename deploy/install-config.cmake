# Install-time part of `cmake --install` / CPack (included by CMakeLists.txt
# with install(SCRIPT)): writes the systemd unit and the /etc/default file with
# the paths of *this* install's prefix (/usr for the Debian package, whatever
# --prefix says otherwise). DESTDIR applies (file(INSTALL) adds it).
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(etc "/etc")                    # the FHS place for /usr's configuration
  set(unitdir "/usr/lib/systemd/system")
else()
  set(etc "${prefix}/etc")
  set(unitdir "${prefix}/lib/systemd/system")
endif()
set(BDT_SBIN "${prefix}/${BDT_SBINDIR}")
set(BDT_DEFAULTS_FILE "${etc}/default/btrfs-dio-trace")
set(out "${BDT_BINARY_DIR}/deploy-generated")
configure_file("${BDT_SOURCE_DIR}/deploy/systemd/btrfs-dio-trace.service.in" "${out}/btrfs-dio-trace.service" @ONLY)
configure_file("${BDT_SOURCE_DIR}/deploy/default/btrfs-dio-trace.in" "${out}/btrfs-dio-trace" @ONLY)
file(INSTALL "${out}/btrfs-dio-trace.service" DESTINATION "${unitdir}")
file(INSTALL "${out}/btrfs-dio-trace" DESTINATION "${etc}/default")
