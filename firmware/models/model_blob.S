/* The default model blob and the built-in vocabulary (a table blob; empty unless the build names one with
 * VOCAB=FILE), linked in as read-only data (flash on a microcontroller). */
    .section .rodata.tvlm_model, "a"
    .balign 8
    .global tvlm_default_model
tvlm_default_model:
    .incbin TVLM_MODEL_FILE
    .global tvlm_default_model_end
tvlm_default_model_end:

    .section .rodata.tvlm_vocab, "a"
    .balign 8
    .global tvlm_builtin_vocab
tvlm_builtin_vocab:
#ifdef TVLM_VOCAB_FILE
    .incbin TVLM_VOCAB_FILE
#endif
    .global tvlm_builtin_vocab_end
tvlm_builtin_vocab_end:
#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack, "", %progbits
#endif
