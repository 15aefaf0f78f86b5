// The in-sandbox half of a java session: one JShell (the JDK's own REPL engine) for every cell.
//
// Run inside the sandbox by the sandbox agent as a single-file program (`java JshellDriver.java`,
// its text written to /tmp first), its input left open. Variables, methods, classes and imports of
// one cell are there in the next; a cell holds any number of snippets (split as jshell splits
// them); the value of the last expression comes back as jshell shows it. One JSON line per request
// on stdin, one answer per line on stdout after PREFIX (the protocol of kernel_driver.py; the code
// comes base64-encoded in `code_b64`, so no JSON parser is needed here). Snippets run in this JVM
// (the local execution engine): SIGINT stops a running cell.
import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.JShell;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;

public class JshellDriver {
    static final String PREFIX = "\u001eTAPK ";
    static final PrintStream PROTOCOL = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    static final ByteArrayOutputStream OUT = new ByteArrayOutputStream();
    static final ByteArrayOutputStream ERR = new ByteArrayOutputStream();
    static volatile JShell shell;
    static volatile boolean running, stopped;  // a cell is running; an interrupt stopped it

    static String field(String line, String name) {
        Matcher m = Pattern.compile("\"" + name + "\":\\s*(\"([^\"]*)\"|(-?\\d+))").matcher(line);
        return m.find() ? (m.group(2) != null ? m.group(2) : m.group(3)) : null;
    }

    static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static JShell fresh() {
        PrintStream out = new PrintStream(OUT, true, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(ERR, true, StandardCharsets.UTF_8);
        return JShell.builder().out(out).err(err).executionEngine("local").build();
    }

    static void execute(String id, String code, int cap) {
        long t0 = System.nanoTime();
        OUT.reset();
        ERR.reset();
        String value = null, errName = null, errMessage = null;
        List<String> trace = new ArrayList<>();
        SourceCodeAnalysis analysis = shell.sourceCodeAnalysis();
        String rest = code;
        stopped = false;
        running = true;
        while (!rest.isBlank() && errName == null && !stopped) {
            SourceCodeAnalysis.CompletionInfo info = analysis.analyzeCompletion(rest);
            String source = info.completeness().isComplete() ? info.source() : rest;
            rest = info.completeness().isComplete() ? info.remaining() : "";
            for (SnippetEvent event : shell.eval(source)) {
                if (event.exception() != null) {
                    Throwable e = event.exception();
                    errName = e instanceof EvalException ? ((EvalException) e).getExceptionClassName() : e.getClass().getName();
                    errMessage = String.valueOf(e.getMessage());
                    for (StackTraceElement frame : e.getStackTrace()) trace.add("at " + frame);
                } else if (event.status() == Snippet.Status.REJECTED) {
                    errName = "CompilationError";
                    StringBuilder why = new StringBuilder();
                    for (Diag d : (Iterable<Diag>) shell.diagnostics(event.snippet())::iterator) {
                        why.append(d.getMessage(null)).append('\n');
                    }
                    errMessage = why.toString().strip();
                } else if (event.causeSnippet() == null) {
                    String v = event.value();  // "" for a statement: the cell then has no value
                    value = v == null || v.isEmpty() ? null : v;
                }
            }
        }
        running = false;
        if (stopped && errName == null) {
            errName = "Interrupted";
            errMessage = "the cell was stopped by an interrupt";
        }
        String out = OUT.toString(StandardCharsets.UTF_8), err = ERR.toString(StandardCharsets.UTF_8);
        boolean truncated = out.length() > cap || err.length() > cap;
        StringBuilder traceJson = new StringBuilder("[");
        for (int i = 0; i < trace.size(); i++) traceJson.append(i > 0 ? "," : "").append(quote(trace.get(i)));
        String error = errName == null ? "null"
            : "{\"name\":" + quote(errName) + ",\"message\":" + quote(errMessage) + ",\"traceback\":" + traceJson + "]}";
        PROTOCOL.print("\n" + PREFIX + "{\"id\":" + id + ",\"stdout\":" + quote(out.substring(0, Math.min(cap, out.length())))
            + ",\"stderr\":" + quote(err.substring(0, Math.min(cap, err.length()))) + ",\"value\":" + quote(value)
            + ",\"outputs\":[],\"error\":" + error + ",\"duration\":" + (System.nanoTime() - t0) / 1e9
            + ",\"truncated\":" + truncated + "}\n");
        PROTOCOL.flush();
    }

    public static void main(String[] args) throws Exception {
        System.setOut(new PrintStream(OUT, true, StandardCharsets.UTF_8));  // snippets run in this JVM
        System.setErr(new PrintStream(ERR, true, StandardCharsets.UTF_8));
        shell = fresh();
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), sig -> {
            if (running) {  // between cells an interrupt finds nothing to stop
                stopped = true;
                shell.stop();
            }
        });
        PROTOCOL.print("\n" + PREFIX + "{\"ready\":true}\n");
        PROTOCOL.flush();
        java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            String op = field(line, "op"), id = field(line, "id");
            if ("execute".equals(op)) {
                String b64 = field(line, "code_b64"), cap = field(line, "cap");
                execute(id, new String(Base64.getDecoder().decode(b64 == null ? "" : b64), StandardCharsets.UTF_8),
                        cap == null ? 1 << 20 : Integer.parseInt(cap));
            } else if ("restart".equals(op)) {
                shell.close();
                shell = fresh();
                PROTOCOL.print("\n" + PREFIX + "{\"id\":" + id + ",\"restarted\":true}\n");
                PROTOCOL.flush();
            }
        }
        shell.close();
    }
}
