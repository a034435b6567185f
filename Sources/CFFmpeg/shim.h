// FFmpeg's headers, and the few C macros Swift cannot import turned into static inline functions.
// Only NLVideo imports this module.
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
#include <libavutil/avutil.h>
#include <libavutil/imgutils.h>
#include <libavutil/display.h>
#include <libavutil/error.h>
#include <libavutil/pixdesc.h>
#include <stdio.h>

static inline int cffmpeg_averror(int e) { return AVERROR(e); }
static inline int cffmpeg_averror_eof(void) { return AVERROR_EOF; }
static inline int cffmpeg_averror_stream_not_found(void) { return AVERROR_STREAM_NOT_FOUND; }
static inline int64_t cffmpeg_nopts_value(void) { return AV_NOPTS_VALUE; }

// FFmpeg logs to stderr by default; the project keeps it quiet and remembers, per thread, the last
// error-level line, so that errors can carry FFmpeg's own words ("moov atom not found"). The buffers
// are function-local statics: Swift emits those, but not file-scope ones, from a header.
static inline char *cffmpeg_last_error_buffer(void) {
    static __thread char buffer[512];
    return buffer;
}

static inline void cffmpeg_log_callback(void *context, int level, const char *format, va_list arguments) {
    (void)context;
    if (level > AV_LOG_ERROR) return;
    vsnprintf(cffmpeg_last_error_buffer(), 512, format, arguments);
}

static inline void cffmpeg_capture_log(void) { av_log_set_callback(cffmpeg_log_callback); }

// The last error line of this thread, or NULL; taking it clears it.
static inline const char *cffmpeg_take_last_error(void) {
    static __thread char taken[512];
    char *last = cffmpeg_last_error_buffer();
    if (last[0] == 0) return NULL;
    snprintf(taken, sizeof taken, "%s", last);
    last[0] = 0;
    return taken;
}
