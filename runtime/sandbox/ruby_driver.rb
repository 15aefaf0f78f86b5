# The in-sandbox half of a ruby session: one binding every cell is evaluated in, as irb keeps one.
#
# Run inside the sandbox as `ruby -e <this file>` by the sandbox agent (input left open). Local
# variables, methods, classes and requires of one cell are there in the next; the value of a cell
# comes back as irb shows it (`inspect`). One JSON line per request on stdin, one answer per line
# on stdout after PREFIX (the protocol of kernel_driver.py). SIGINT stops a running cell
# (Interrupt); between cells it is ignored. What cells print through $stdout/$stderr is captured.
require 'json'
require 'stringio'

PREFIX = "\x1eTAPK "
PROTOCOL = $stdout.dup
PROTOCOL.sync = true
ORIGINAL_OUT, ORIGINAL_ERR = $stdout, $stderr

def say(message)
  PROTOCOL.write("\n#{PREFIX}#{JSON.generate(message)}\n")
end

def fresh_binding
  Object.new.instance_eval { binding }
end

def execute(scope, request)
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  cap = (request['cap'] || 1 << 20).to_i
  out, err = StringIO.new, StringIO.new
  value = error = nil
  begin
    $stdout, $stderr = out, err
    result = scope.eval(request['code'].to_s, "(cell #{request['id']})", 1)
    value = result.inspect
  rescue Exception => e # rubocop:disable Lint/RescueException -- a cell's Interrupt and SyntaxError are its result
    error = { name: e.class.name, message: e.message, traceback: e.backtrace || [] }
  ensure
    $stdout, $stderr = ORIGINAL_OUT, ORIGINAL_ERR
  end
  texts = [out.string, err.string]
  say(id: request['id'], stdout: texts[0][0, cap], stderr: texts[1][0, cap], value: value, outputs: [],
      error: error, duration: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started,
      truncated: texts.any? { |t| t.length > cap })
end

scope = fresh_binding
say(ready: true)
loop do
  line = begin
    $stdin.gets
  rescue Interrupt
    next # an interrupt between cells finds nothing to stop
  end
  break if line.nil?

  request = begin
    JSON.parse(line)
  rescue JSON::ParserError
    next
  end
  case request['op']
  when 'execute'
    begin
      execute(scope, request)
    rescue Interrupt
      say(id: request['id'], stdout: '', stderr: '', value: nil, outputs: [],
          error: { name: 'Interrupt', message: 'interrupted', traceback: [] }, duration: 0, truncated: false)
    end
  when 'restart'
    scope = fresh_binding
    say(id: request['id'], restarted: true)
  end
end
