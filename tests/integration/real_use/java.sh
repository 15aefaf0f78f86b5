# javac compiles, java runs the class, Maven answers.
mkdir -p src out
cat > src/Main.java <<'JAVA'
public class Main {
    public static void main(String[] args) {
        System.out.println(6 * 7);
    }
}
JAVA
javac -d out src/Main.java
java -cp out Main | grep -qx 42
mvn -v | grep -q "Apache Maven 3"
