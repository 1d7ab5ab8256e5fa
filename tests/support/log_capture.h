/* In-process tests of the daemon's backends: the daemon's logger (daemon/log.c) replaced by one
 * that hands every line to the test.  Linking log_capture.c keeps log.c out of the test (the
 * backends' static library then never pulls it in). */
#ifndef VKR_TESTS_LOG_CAPTURE_H
#define VKR_TESTS_LOG_CAPTURE_H

/* Defined by each test: called with every line at or below vkr__log_level (VKR_LOG_DEBUG here),
 * formatted, from whichever thread logged it. */
void log_capture_line(int level, const char *line);

/* Print a line as a TAP comment ("# level: line", newlines flattened). */
void log_capture_print(int level, const char *line);

/* Lines that began "vulkan validation:" so far (VK_LAYER_KHRONOS_validation's messages). */
unsigned log_capture_validation_messages(void);

#endif
