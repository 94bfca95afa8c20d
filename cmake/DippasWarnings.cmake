# Warnings on for our own targets only (LibTorch's headers are SYSTEM via the
# imported target, so they stay quiet).
function(dippas_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
endfunction()
