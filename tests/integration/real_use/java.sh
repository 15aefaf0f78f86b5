# javac compiles, java runs the class, Maven answers.
# Pipes end in `grep >/dev/null`, not `grep -q`: under pipefail an early-exiting grep
# makes the writer die of SIGPIPE (mvn did) and fails the step.
mkdir -p src out
cat > src/Main.java <<'JAVA'
public class Main {
    public static void main(String[] args) {
        System.out.println(6 * 7);
    }
}
JAVA
javac -d out src/Main.java
java -cp out Main | grep -x 42 >/dev/null
mvn -v | grep "Apache Maven 3" >/dev/null
