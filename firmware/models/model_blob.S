/* The default model blob, linked in as read-only data (flash on a microcontroller). */
    .section .rodata.tvlm_model, "a"
    .balign 8
    .global tvlm_default_model
tvlm_default_model:
    .incbin TVLM_MODEL_FILE
    .global tvlm_default_model_end
tvlm_default_model_end:
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack, "", %progbits
#endif
