/* assets.S — files served by the proxy, embedded into the binary at build
 * time (the dashboard must work on an offline machine). */
        .section .rodata
        .global pc_asset_dashboard
        .global pc_asset_dashboard_end
pc_asset_dashboard:
        .incbin "assets/dashboard.html"
pc_asset_dashboard_end:
        .byte 0
        .section .note.GNU-stack,"",@progbits
