# Run by `cmake --install`: writes the example systemd unit with the binary's installed path
# (known only at install time, since --prefix may override the configured prefix).
# Inputs: T2S_UNIT_IN (the template), T2S_BINDIR (relative to the prefix, or absolute).
if(IS_ABSOLUTE "${T2S_BINDIR}")
  set(bindir "${T2S_BINDIR}")
else()
  set(bindir "${CMAKE_INSTALL_PREFIX}/${T2S_BINDIR}")
endif()
file(READ "${T2S_UNIT_IN}" unit)
string(REPLACE "@BINDIR@" "${bindir}" unit "${unit}")
set(dest "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
message(STATUS "Installing: ${dest}/tun2sock.service")
file(MAKE_DIRECTORY "${dest}")
file(WRITE "${dest}/tun2sock.service" "${unit}")
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dest}/tun2sock.service")
